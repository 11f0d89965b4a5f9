import pytest

from tests.api.conftest import started_client
from tests.helpers import copy_model


def test_metadata_lists_versions_and_tensors_with_the_batch_dimension(client):
    metadata = client.get("/v2/models/digits").json()
    assert metadata["versions"] == ["1", "2", "3", "4", "5", "6"]
    assert metadata["platform"] == "onnxruntime_onnx"
    assert metadata["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
    assert [o["name"] for o in metadata["outputs"]] == [
        "logits", "probabilities", "label", "class_name", "top_classes", "top_scores"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("version", "platform"),
    [("3", "pytorch_libtorch"), ("torchscript", "pytorch_libtorch"), ("int8", "onnxruntime_onnx")],
)
def test_versioned_metadata_accepts_the_number_or_the_variant_name(client, version, platform):
    metadata = client.get(f"/v2/models/digits/versions/{version}").json()
    assert metadata["platform"] == platform
    assert len(metadata["versions"]) == 1


def test_config_is_in_tritons_form_without_the_batch_dimension(client):
    config = client.get("/v2/models/minilm-ids/config").json()
    assert config["max_batch_size"] == 32
    assert config["input"] == [
        {"name": "input_ids", "data_type": "TYPE_INT64", "dims": [-1]},
        {"name": "attention_mask", "data_type": "TYPE_INT64", "dims": [-1]},
    ]
    assert config["output"] == [{"name": "sentence_embedding", "data_type": "TYPE_FP32", "dims": [384]}]
    assert config["dynamic_batching"]["preferred_batch_size"] == [8, 16, 32]
    assert (
        client.get("/v2/models/digits/versions/int8/config").json()["parameters"]["precision"]["string_value"] == "int8"
    )


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v2/models/digits/ready", 200),
        ("/v2/models/digits/versions/2/ready", 200),
        ("/v2/models/nope/ready", 404),
        ("/v2/models/digits/versions/99/ready", 404),
        ("/v2/models/nope", 404),
        ("/v2/models/nope/config", 404),
        ("/v2/models/..%2F..%2Fetc/config", 404),
    ],
)
def test_model_readiness_and_unknown_names(client, path, status):
    assert client.get(path).status_code == status


def test_a_variant_that_failed_to_load_is_not_ready_with_its_reason(tmp_path, demo_models):
    folder = copy_model("digits", tmp_path)
    (folder / "model.int8.onnx").write_bytes(b"corrupt")
    with started_client(tmp_path) as client:
        response = client.get("/v2/models/digits/versions/int8/ready")
        assert response.status_code == 503
        assert "onnxruntime cannot load model.int8.onnx" in response.json()["error"]
        assert client.get("/v2/models/digits/versions/fp32/ready").status_code == 200


def test_config_reports_the_response_cache_only_when_the_server_caches(client, demo_models):
    assert client.get("/v2/models/digits/config").json()["response_cache"] == {"enable": True}
    with started_client(demo_models, cache_backend="off") as uncached:
        assert uncached.get("/v2/models/digits/config").json()["response_cache"] == {"enable": False}
