"""A client's X-Request-Id comes back on the response and names every log line about its request."""

import httpx
import onnx
import yaml
from onnx import TensorProto, helper

from tests.helpers import server_process


def _write_lookup_model(folder) -> None:
    """Looks its input's ids up in a table of four: an id past the table fails inside the runtime (500)."""
    folder.mkdir(parents=True)
    x = helper.make_tensor_value_info("x", TensorProto.INT64, [1, "n"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "n"])
    table = helper.make_tensor("table", TensorProto.FLOAT, [4], [0.5, 1.5, 2.5, 3.5])
    graph = helper.make_graph([helper.make_node("Gather", ["table", "x"], ["y"])], "lookup", [x], [y], [table])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(folder / "model.onnx"))
    manifest = {
        "name": folder.name,
        "inputs": [{"name": "x", "datatype": "INT64", "shape": [1, -1]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [1, -1]}],
        "variants": [{"name": "fp32", "file": "model.onnx", "runtime": "onnx"}],
        "cache": {"enabled": False},
    }
    (folder / "model.yaml").write_text(yaml.safe_dump(manifest))


def _body(*ids: int) -> dict:
    return {"inputs": [{"name": "x", "datatype": "INT64", "shape": [1, len(ids)], "data": list(ids)}]}


def test_the_request_id_is_echoed_and_names_the_log_lines_about_its_request(tmp_path):
    models = tmp_path / "models"
    _write_lookup_model(models / "lookup")
    log = tmp_path / "server.log"
    env = {"SERVOMETER_ACCESS_LOG": "true"}
    with server_process(models, env=env, log=log) as (_, address), httpx.Client(base_url=f"http://{address}") as client:
        served = client.post("/v2/models/lookup/infer", json=_body(1, 3), headers={"X-Request-Id": "served-4"})
        assert served.status_code == 200
        assert served.headers["x-request-id"] == "served-4"
        failed = client.post("/v2/models/lookup/infer", json=_body(1, 9), headers={"X-Request-Id": "odd-3f9c"})
        assert failed.status_code == 500
        assert failed.headers["x-request-id"] == "odd-3f9c"
        for path in ("/v2/health/ready", "/v2/models/lookup", "/v2/models/nope", "/metrics"):
            assert client.get(path, headers={"X-Request-Id": "probe-1"}).headers["x-request-id"] == "probe-1"
        assert "x-request-id" not in client.get("/v2/health/ready").headers
        refused = client.get("/v2/health/ready", headers={"X-Request-Id": "two words"})
        assert refused.status_code == 400
        assert "X-Request-Id must be 1 to 200 visible ASCII characters" in refused.json()["error"]
    lines = log.read_text().splitlines()
    failure = [line for line in lines if "failed on a call of" in line]
    assert failure, lines
    assert all("odd-3f9c" in line for line in failure), failure
    assert any("[request odd-3f9c]" in line and '"POST /v2/models/lookup/infer HTTP/1.1" 500' in line for line in lines)
    assert any("[request served-4]" in line and " 200" in line for line in lines)
    assert not any("odd-3f9c" in line for line in lines if "served-4" in line)
