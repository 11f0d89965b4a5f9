"""A batch and its model call: what the dispatcher forms, joins, runs and splits back to its requests."""

from dataclasses import dataclass

import numpy as np

from app.batching.pending import PendingRequest
from app.errors import ModelFailed, ServingError
from app.processing.pipeline import Computed


@dataclass(frozen=True, slots=True)
class Batch:
    members: list[PendingRequest]
    reason: str


@dataclass(frozen=True, slots=True)
class Job:
    """A batch ready for its model call: the live members and their inputs joined."""

    members: list[PendingRequest]
    samples: int
    inputs: dict[str, np.ndarray]
    outputs: tuple[str, ...]
    input_s: float
    """Time spent joining the members' inputs."""


@dataclass(frozen=True, slots=True)
class Part:
    """Members of a batch answered by one model call: its outputs and seconds, or how it failed."""

    members: list[PendingRequest]
    samples: int
    outcome: Computed | Exception
    input_s: float
    """Time spent joining the members' inputs for the call."""


class Stuck(Exception):
    """A model call ran past ``compute_timeout_ms``: its requests are answered, its instance stays busy."""


def concatenate(members: list[PendingRequest]) -> dict[str, np.ndarray]:
    if len(members) == 1:
        return members[0].inputs
    return {name: np.concatenate([member.inputs[name] for member in members]) for name in members[0].inputs}


def distribute(members: list[PendingRequest], produced: dict[str, np.ndarray], samples: int, label: str) -> None:
    """Split each output along the batch dimension back to the requests, in order."""
    wrong = {name: array.shape for name, array in produced.items() if array.ndim == 0 or array.shape[0] != samples}
    if wrong:
        fail(members, ModelFailed(f"{label} returned outputs {wrong} for a batch of {samples}"))
        return
    start = 0
    for member in members:
        end = start + member.samples
        if not member.future.done():
            member.future.set_result({name: produced[name][start:end] for name in member.outputs})
        start = end


def fail(members: list[PendingRequest], error: ServingError) -> None:
    for member in members:
        if not member.future.done():
            member.future.set_exception(error)


def request_ids(members: list[PendingRequest]) -> str:
    """The X-Request-Ids of a batch's requests, for its log lines."""
    ids = [member.request_id for member in members if member.request_id is not None]
    return f" (requests {', '.join(ids)})" if ids else ""
