"""Errors as gRPC statuses: Triton's codes, and when to retry on UNAVAILABLE."""

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from app.errors import InvalidRequest, ModelFailed, NotFound, Overloaded, PayloadTooLarge, QueueTimeout, Unavailable
from app.grpc_api.status import status_of


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidRequest("bad"), grpc.StatusCode.INVALID_ARGUMENT),
        (NotFound("gone"), grpc.StatusCode.NOT_FOUND),
        (PayloadTooLarge("big"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (QueueTimeout("late"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (ModelFailed("broke"), grpc.StatusCode.INTERNAL),
        (Unavailable("draining"), grpc.StatusCode.UNAVAILABLE),
        (Overloaded("full", status=429), grpc.StatusCode.UNAVAILABLE),
    ],
)
def test_each_error_gets_tritons_code_and_its_message(error, code):
    status = status_of(error)
    assert status.code is code
    assert status.details == error.message


def _retry_seconds(status: grpc.Status) -> int:
    details = status_pb2.Status.FromString(dict(status.trailing_metadata)["grpc-status-details-bin"])
    retry = error_details_pb2.RetryInfo()
    assert details.details[0].Unpack(retry)
    return int(retry.retry_delay.seconds)


def test_overload_says_when_to_retry_as_retry_after_does():
    assert _retry_seconds(status_of(Overloaded("queue full", headers={"retry-after": "2"}))) == 2


def test_draining_and_loading_say_to_retry_in_a_second():
    assert _retry_seconds(status_of(Unavailable("shutting down"))) == 1


def test_a_client_error_carries_no_retry_advice():
    details = status_pb2.Status.FromString(
        dict(status_of(InvalidRequest("bad")).trailing_metadata)["grpc-status-details-bin"]
    )
    assert list(details.details) == []
