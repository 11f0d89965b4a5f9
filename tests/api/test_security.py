"""API keys, the management API (off by default, its own key when on), CORS and security headers."""

import shutil

import httpx
import pytest
import yaml
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.routing import BaseRoute, Mount, Route

from app.config import Settings
from tests.api.conftest import async_app
from tests.helpers import copy_model, free_port

KEY = "inference-key-0123456789abcdef"
ADMIN = "management-key-0123456789abcdef"
IMAGE = {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": [0.0] * 64}]}


def _bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.fixture
def repository(tmp_path, demo_models):
    copy_model("digits", tmp_path / "models")
    return tmp_path / "models"


async def test_without_keys_everything_is_open_but_the_management_api_is_off(repository):
    async with async_app(repository) as (_, client):
        response = await client.post("/v2/models/digits/infer", json=IMAGE)
        assert response.status_code == 200
        assert response.headers["x-content-type-options"] == "nosniff"
        assert (await client.get("/v2/models/digits")).headers["x-frame-options"] == "DENY"
        off = await client.post("/v2/repository/index", headers=_bearer(ADMIN))
        assert off.status_code == 404
        assert "management API is off" in off.json()["error"]


def _served_routes(app: FastAPI) -> list[tuple[str, str]]:
    """``(path, method)`` of every route the app serves, placeholders filled in, and the inference path (answered
    before FastAPI's router)."""
    served = [("/v2/models/digits/infer", "POST"), ("/v2/models/digits/versions/1/infer", "POST")]

    def walk(routes: list[BaseRoute], prefix: str) -> None:
        for route in routes:
            included = getattr(route, "original_router", None)  # FastAPI's include_router, as of 0.13x
            if included is not None:
                walk(included.routes, prefix + route.include_context.prefix)  # type: ignore[attr-defined]
            elif isinstance(route, Mount):
                served.append((prefix + route.path + "/swagger-ui.css", "GET"))
            else:
                assert isinstance(route, APIRoute | Route), route
                path = (prefix + route.path).replace("{model}", "digits").replace("{version}", "1")
                served.extend((path, method) for method in sorted(route.methods or ()) if method != "HEAD")

    walk(app.routes, "")
    return served


async def test_with_keys_every_route_the_app_serves_needs_one_but_the_probes_and_opened_paths(repository):
    async with async_app(repository, api_keys=[KEY], management_api_key=ADMIN) as (app, client):
        # Added after start, as a later feature would be: covered without anyone listing it anywhere.
        app.add_api_route("/v1/later", lambda: {"served": True}, methods=["GET"])
        routes = _served_routes(app)
        assert len(routes) >= 25
        # The live page's own files (no data in them) are open; its data, under /ui/api/, is not.
        opened = {"/v2/health/live", "/v2/health/ready", "/metrics", "/docs", "/openapi.json", "/"}
        for path, method in routes:
            answer = await client.request(method, path)
            if path in opened or path.startswith("/docs/"):
                assert answer.status_code not in (401, 403), (method, path)
                continue
            assert answer.status_code == 401, (method, path, answer.status_code)
            assert answer.headers["www-authenticate"].startswith("Bearer")
            assert (await client.request(method, path, headers=_bearer(KEY + "x"))).status_code == 401, path
        assert (await client.get("/v1/later", headers=_bearer(KEY))).json() == {"served": True}
        allowed = await client.post("/v2/models/digits/infer", json=IMAGE, headers=_bearer(KEY))
        assert allowed.status_code == 200
        assert (await client.get("/v2/models/digits", headers=_bearer(KEY))).status_code == 200
        assert (await client.get("/v2", headers=_bearer(KEY))).status_code == 200


async def test_public_paths_can_close_metrics_and_docs_too(repository):
    async with async_app(repository, api_keys=[KEY], public_paths=[]) as (_, client):
        for path in ("/metrics", "/docs", "/openapi.json"):
            assert (await client.get(path)).status_code == 401, path
            assert (await client.get(path, headers=_bearer(KEY))).status_code == 200, path
        assert (await client.get("/v2/health/ready")).status_code == 200


async def test_feedback_can_be_limited_to_its_own_key(repository):
    judge = "feedback-key-0123456789abcdef"
    async with async_app(repository, api_keys=[KEY], feedback_api_key=judge) as (_, client):
        answered = await client.post("/v2/models/digits/infer", json=IMAGE, headers=_bearer(KEY))
        body = {"id": answered.headers["servometer-response-id"], "label": 3}
        refused = await client.post("/v2/models/digits/feedback", json=body, headers=_bearer(KEY))
        assert refused.status_code == 403
        assert "feedback key" in refused.json()["error"]
        assert (await client.post("/v2/models/digits/feedback", json=body)).status_code == 401
        accepted = await client.post("/v2/models/digits/feedback", json=body, headers=_bearer(judge))
        assert accepted.status_code == 200, accepted.text
        # The feedback key judges answers; it does not ask for them.
        assert (await client.post("/v2/models/digits/infer", json=IMAGE, headers=_bearer(judge))).status_code == 403


async def test_a_null_byte_in_a_path_is_a_400_in_json(repository):
    async with async_app(repository, management_api_key=ADMIN) as (_, client):
        for path in ("/v2/repository/models/dig%00its/load", "/v2/models/dig%00its/infer", "/v2/models/a%00"):
            refused = await client.post(path, headers=_bearer(ADMIN))
            assert refused.status_code == 400, path
            assert "null byte" in refused.json()["error"]


async def test_the_management_api_needs_its_own_key_and_loads_only_repository_folders(repository, demo_models):
    async with async_app(repository, api_keys=[KEY], management_api_key=ADMIN) as (_, client):
        assert (await client.post("/v2/repository/index")).status_code == 401
        assert (await client.post("/v2/repository/index", headers=_bearer(KEY))).status_code == 403
        index = (await client.post("/v2/repository/index", headers=_bearer(ADMIN))).json()
        assert {"name": "digits", "version": "1", "state": "READY", "reason": ""} in index

        copy_model("minilm", repository)  # a model added to the repository after start
        assert (await client.get("/v2/models/minilm", headers=_bearer(KEY))).status_code == 404
        loaded = await client.post("/v2/repository/models/minilm/load", headers=_bearer(ADMIN))
        assert loaded.status_code == 200, loaded.text
        assert (await client.get("/v2/models/minilm/ready", headers=_bearer(KEY))).status_code == 200

        for name in ("..", "%2e%2e", "digits%2f..", "nope"):
            refused = await client.post(f"/v2/repository/models/{name}/load", headers=_bearer(ADMIN))
            assert refused.status_code == 404, name

        manifest = repository / "digits" / "model.yaml"
        good = manifest.read_text()
        manifest.write_text(good.replace("datatype: FP32\n", "datatype: FP99\n", 1))
        failed = await client.post("/v2/repository/models/digits/load", headers=_bearer(ADMIN))
        assert failed.status_code == 503
        assert "keeps serving" in failed.json()["error"]
        assert (await client.post("/v2/models/digits/infer", json=IMAGE, headers=_bearer(KEY))).status_code == 200

        unloaded = await client.post("/v2/repository/models/minilm/unload", headers=_bearer(ADMIN))
        assert unloaded.status_code == 200
        # minilm is required: readiness follows its unload
        not_ready = await client.get("/v2/health/ready")
        assert not_ready.status_code == 503
        assert "required model 'minilm' is not loaded" in not_ready.json()["error"]
        assert (await client.get("/v2/models/minilm", headers=_bearer(KEY))).status_code == 404


async def test_a_symlinked_folder_pointing_outside_the_repository_is_not_loaded(repository, tmp_path):
    outside = tmp_path / "elsewhere"
    shutil.copytree(repository / "digits", outside / "evil")
    manifest = yaml.safe_load((outside / "evil" / "model.yaml").read_text())
    manifest["name"] = "evil"
    (outside / "evil" / "model.yaml").write_text(yaml.safe_dump(manifest))
    (repository / "evil").symlink_to(outside / "evil")
    async with async_app(repository, management_api_key=ADMIN) as (_, client):
        refused = await client.post("/v2/repository/models/evil/load", headers=_bearer(ADMIN))
        assert refused.status_code == 404


async def test_cors_is_off_by_default_and_answers_preflights_for_configured_origins(repository):
    preflight = {"origin": "https://app.example", "access-control-request-method": "POST"}
    async with async_app(repository) as (_, client):
        response = await client.options("/v2/models/digits/infer", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
    async with async_app(repository, api_keys=[KEY], cors_origins=["https://app.example"]) as (_, client):
        response = await client.options("/v2/models/digits/infer", headers=preflight)
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "https://app.example"
        other = await client.options("/v2/models/digits/infer", headers={**preflight, "origin": "https://evil"})
        assert "access-control-allow-origin" not in other.headers


def test_short_keys_are_refused_at_start():
    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings(api_keys=["short"])
    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings(management_api_key="short")


async def test_metrics_on_their_own_port_leave_the_api_port(repository):
    port = free_port()
    async with async_app(repository, metrics_port=port) as (_, client):
        refused = await client.get("/metrics")
        assert refused.status_code == 404
        assert f"port {port}" in refused.json()["error"]
        async with httpx.AsyncClient() as scraper:
            scraped = await scraper.get(f"http://127.0.0.1:{port}/metrics")
            assert scraped.status_code == 200
            assert "servometer_model_ready" in scraped.text
            assert (await scraper.get(f"http://127.0.0.1:{port}/v2/models/digits")).status_code == 404


async def test_the_openai_routes_need_the_key_too_and_refuse_in_openais_error_shape(repository):
    async with async_app(repository, api_keys=[KEY]) as (_, client):
        refused = await client.get("/v1/models")
        assert refused.status_code == 401
        error = refused.json()["error"]
        assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", None, "invalid_api_key")
        assert "Bearer" in error["message"]
        listed = await client.get("/v1/models", headers=_bearer(KEY))
        assert listed.status_code == 200
        assert [model["id"] for model in listed.json()["data"]] == ["digits"]
        # Still the V2 shape everywhere else: tritonclient reads {"error": "..."}.
        assert isinstance((await client.get("/v2/models/digits")).json()["error"], str)
