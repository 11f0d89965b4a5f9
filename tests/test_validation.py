import numpy as np
import pytest

from app.errors import InvalidRequest
from app.protocol.codec import DecodedRequest, Tensor
from app.protocol.schemas import RequestOutput
from app.schema.manifest import load_manifest
from app.validation import RequestCheck
from tests.helpers import MODELS

DIGITS = load_manifest(MODELS / "digits")
MINILM = load_manifest(MODELS / "minilm-ids")


def _request(*tensors: Tensor, outputs: list[str] | None = None) -> DecodedRequest:
    wanted = None if outputs is None else [RequestOutput(name=name) for name in outputs]
    return DecodedRequest(None, {}, list(tensors), wanted)


def _image(batch: int = 1, dtype: str = "FP32", shape: tuple[int, ...] | None = None) -> Tensor:
    return Tensor("image", dtype, np.zeros(shape or (batch, 1, 8, 8), dtype=np.float32))


def test_a_matching_request_passes():
    RequestCheck(DIGITS)(_request(_image(4), outputs=["label"]))


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (
            _request(Tensor("pixels", "FP32", np.zeros((1, 1, 8, 8), np.float32))),
            "sent ['pixels'] (missing ['image'], unknown ['pixels'])",
        ),
        (
            _request(_image(), Tensor("extra", "FP32", np.zeros(1, np.float32))),
            "sent ['image', 'extra'] (unknown ['extra'])",
        ),
        (_request(_image(0)), "input 'image': dimension 0 is 0; every dimension must be 1 or more"),
        (_request(_image(dtype="FP64")), "input 'image': expected datatype FP32, got FP64"),
        (_request(_image(shape=(1, 8, 8))), "input 'image': expected shape [-1, 1, 8, 8], got [1, 8, 8]"),
        (_request(_image(shape=(1, 1, 8, 9))), "got [1, 1, 8, 9]"),
        (_request(_image(65)), "batch size 65 exceeds model 'digits' max_batch_size 64"),
        (_request(_image(), outputs=["logit"]), "has no output 'logit'; its outputs are ['logits'"),
    ],
)
def test_requests_that_do_not_match_the_model_are_rejected_with_what_was_expected(request_, message):
    with pytest.raises(InvalidRequest) as caught:
        RequestCheck(DIGITS)(request_)
    assert message in caught.value.message


def test_inputs_must_agree_on_batch_size_and_respect_max_shape():
    ids = Tensor("input_ids", "INT64", np.zeros((2, 8), np.int64))
    with pytest.raises(InvalidRequest, match="disagree on the batch size"):
        RequestCheck(MINILM)(_request(ids, Tensor("attention_mask", "INT64", np.zeros((3, 8), np.int64))))
    long_ids = Tensor("input_ids", "INT64", np.zeros((1, 300), np.int64))
    long_mask = Tensor("attention_mask", "INT64", np.zeros((1, 300), np.int64))
    with pytest.raises(InvalidRequest, match="input 'input_ids': dimension 1 is 300, at most 256"):
        RequestCheck(MINILM)(_request(long_ids, long_mask))


@pytest.mark.parametrize(
    ("ids", "mask", "message"),
    [
        ([[101, 30522, 102]], [[1, 1, 1]], "input 'input_ids': values must lie in [0, 30521]"),
        ([[101, -1, 102]], [[1, 1, 1]], "got 1 outside it, e.g. -1"),
        ([[101, 7, 102]], [[1, 2, 1]], "input 'attention_mask': values must lie in [0, 1]"),
    ],
)
def test_values_outside_an_inputs_declared_range_are_rejected_naming_the_input(ids, mask, message):
    request = _request(
        Tensor("input_ids", "INT64", np.array(ids, np.int64)),
        Tensor("attention_mask", "INT64", np.array(mask, np.int64)),
    )
    with pytest.raises(InvalidRequest) as caught:
        RequestCheck(MINILM)(request)
    assert message in caught.value.message


def test_values_at_the_edges_of_the_declared_range_pass():
    ids = Tensor("input_ids", "INT64", np.array([[0, 30521]], np.int64))
    RequestCheck(MINILM)(_request(ids, Tensor("attention_mask", "INT64", np.array([[0, 1]], np.int64))))


def test_an_attention_mask_of_another_shape_than_its_token_ids_is_refused_naming_both():
    check = RequestCheck(MINILM)
    ids = Tensor("input_ids", "INT64", np.ones((2, 5), np.int64))
    mask = Tensor("attention_mask", "INT64", np.ones((2, 6), np.int64))
    with pytest.raises(
        InvalidRequest, match=r"input 'attention_mask': expected the shape of input 'input_ids' \[2, 5\]"
    ):
        check(_request(ids, mask))


def test_the_value_budget_is_the_largest_valid_request():
    assert RequestCheck(DIGITS).max_values == 64 * 64
    assert RequestCheck(MINILM).max_values == 2 * 32 * 256
