import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.cache.key import CorruptEntry, cache_key, decode_entry, encode_entry
from app.protocol.codec import decode_request

IMAGE = (np.arange(64, dtype=np.float32) / 7).reshape(1, 1, 8, 8)


def _json(image: np.ndarray = IMAGE, outputs: list | None = None, datatype: str = "FP32"):
    document: dict = {
        "inputs": [
            {"name": "image", "datatype": datatype, "shape": list(image.shape), "data": image.reshape(-1).tolist()}
        ]
    }
    if outputs is not None:
        document["outputs"] = outputs
    return decode_request(orjson.dumps(document), None)


def _binary(image: np.ndarray = IMAGE):
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "image",
                    "datatype": "FP32",
                    "shape": list(image.shape),
                    "parameters": {"binary_data_size": image.nbytes},
                }
            ]
        }
    )
    return decode_request(header + image.tobytes(), len(header))


def _key(request, variant="fp32", digest="d1", outputs=("label",)) -> str:
    return cache_key("digits", variant, digest, request, outputs)


def test_the_same_tensor_as_json_or_binary_has_the_same_key():
    assert _key(_json()) == _key(_binary())


def test_one_different_byte_shape_or_datatype_gives_another_key():
    changed = IMAGE.copy()
    changed.view(np.uint8)[0, 0, 0, 0] ^= 1  # one bit of one float
    assert _key(_binary(changed)) != _key(_binary())
    assert _key(_json(IMAGE.reshape(1, 1, 4, 16))) != _key(_json())
    assert _key(_json(IMAGE.astype(np.float64), datatype="FP64")) != _key(_json())


def test_variant_model_file_and_requested_outputs_are_part_of_the_key():
    base = _key(_json())
    assert _key(_json(), variant="int8") != base
    assert _key(_json(), digest="d2") != base
    assert _key(_json(), outputs=("logits",)) != base


def test_binary_data_only_changes_the_encoding_so_not_the_key():
    plain = _json(outputs=[{"name": "label"}])
    binary = _json(outputs=[{"name": "label", "parameters": {"binary_data": True}}])
    other = _json(outputs=[{"name": "label", "parameters": {"classification": 3}}])
    assert _key(plain) == _key(binary)
    assert _key(plain) != _key(other)


def test_entries_round_trip_and_are_checked_on_read():
    outputs = {
        "logits": np.random.default_rng(0).standard_normal((2, 10)).astype(np.float32),
        "label": np.array([3, 7]),
    }
    entry = encode_entry("d1", outputs)
    decoded = decode_entry(entry, "d1")
    for name, array in outputs.items():
        np.testing.assert_array_equal(decoded[name], array)
        assert decoded[name].dtype == array.dtype


@given(
    texts=st.lists(st.binary(max_size=40), min_size=1, max_size=12),
    scores=st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=12),
)
def test_entries_with_bytes_outputs_round_trip_beside_numeric_ones(texts, scores):
    names = np.empty(len(texts), dtype=np.object_)
    names[:] = texts
    outputs = {"class_name": names, "score": np.array(scores, dtype=np.float32), "top": names.reshape(-1, 1)}
    decoded = decode_entry(encode_entry("d1", outputs), "d1")
    assert decoded.keys() == outputs.keys()
    for name, array in outputs.items():
        assert decoded[name].shape == array.shape
        assert decoded[name].tolist() == array.tolist()


def test_a_bytes_output_cut_short_is_refused():
    names = np.array([b"seven", b"three"], dtype=np.object_)
    with pytest.raises(CorruptEntry, match="truncated"):
        decode_entry(encode_entry("d1", {"class_name": names})[:-2], "d1")


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda e: b"XXXX" + e[4:], "not a Servometer cache entry"),
        (lambda e: e[:-3], "truncated"),
        (lambda e: e + b"\0", "trailing bytes"),
        (lambda e: e[:8] + b"[" + e[9:], "cannot be read"),
        (lambda e: b"", "not a Servometer cache entry"),
    ],
)
def test_a_corrupt_entry_is_refused(mangle, message):
    entry = encode_entry("d1", {"label": np.array([3, 7])})
    with pytest.raises(CorruptEntry, match=message):
        decode_entry(mangle(entry), "d1")


def test_an_entry_of_another_model_file_is_refused():
    with pytest.raises(CorruptEntry, match="another format or model file"):
        decode_entry(encode_entry("old-digest", {"label": np.array([1])}), "new-digest")
