import re
import threading
import time

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.repository.registry import Registry


def test_live_ready_and_server_metadata(client):
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    metadata = client.get("/v2").json()
    assert metadata["name"] == "servometer"
    assert metadata["extensions"] == ["binary_tensor_data", "model_configuration", "statistics"]


def test_ready_is_503_while_models_load_and_inference_waits_for_nothing(demo_models, monkeypatch):
    release = threading.Event()
    original = Registry.load_all

    def slow_load(self: Registry) -> None:
        release.wait(10)
        original(self)

    monkeypatch.setattr(Registry, "load_all", slow_load)
    with TestClient(create_app(Settings(models=demo_models))) as client:
        assert client.get("/v2/health/live").status_code == 200
        response = client.get("/v2/health/ready")
        assert response.status_code == 503
        assert response.json() == {"error": "not ready: models are still loading"}
        infer = client.post(
            "/v2/models/digits/infer",
            json={"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": [0] * 64}]},
        )
        assert infer.status_code == 503
        assert "is not ready" in infer.json()["error"]
        release.set()
        deadline = time.monotonic() + 30
        while client.get("/v2/health/ready").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_unknown_route_answers_in_the_protocol_error_format(client):
    response = client.get("/v2/nothing/here")
    assert response.status_code == 404
    assert "error" in response.json()


@pytest.mark.parametrize("path", ["/openapi.json", "/docs"])
def test_openapi_docs_are_served(client, path):
    assert client.get(path).status_code == 200


def test_openapi_documents_the_inference_request_body(client):
    schema = client.get("/openapi.json").json()
    for path in ("/v2/models/{model}/infer", "/v2/models/{model}/versions/{version}/infer"):
        body = schema["paths"][path]["post"]["requestBody"]["content"]
        reference = body["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        assert "inputs" in schema["components"]["schemas"][reference]["properties"]
        assert "application/octet-stream" in body
    assert "RequestInput" in schema["components"]["schemas"]


def test_the_docs_page_loads_swagger_ui_from_the_server_itself_not_a_cdn(client):
    page = client.get("/docs")
    assert page.status_code == 200
    assert "http://" not in page.text
    assert "https://" not in page.text.replace("https://fastapi.tiangolo.com", "")
    assets = re.findall(r'(?:src|href)="(/[^"]+)"', page.text)
    assert {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"} <= set(assets)
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
    assert "url: '/openapi.json'" in page.text
    assert client.get("/openapi.json").json()["openapi"].startswith("3.1")  # which Swagger UI 5 renders


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_an_inference_path_answers_other_methods_405_with_allow_post(client, method):
    for path in ("/v2/models/digits/infer", "/v2/models/digits/versions/2/infer", "/v2/models/nope/infer"):
        response = client.request(method, path)
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"
        assert response.json() == {"error": f"{method} is not allowed on an inference path; send the request with POST"}
