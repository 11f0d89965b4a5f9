"""GET /v2/models/{model}/variants: the variant report as JSON and as a plot, and its metrics."""

import yaml

from tests.api.conftest import async_app
from tests.helpers import copy_model


async def test_the_report_lists_every_variant_is_kept_and_is_exported_as_metrics(tmp_path, demo_models):
    copy_model("digits", tmp_path / "models")
    async with async_app(tmp_path / "models", report_dir=tmp_path / "reports", price_per_hour=3.6) as (app, client):
        response = await client.get("/v2/models/digits/variants")
        assert response.status_code == 200, response.text
        report = response.json()
        assert [v["name"] for v in report["variants"]] == [
            "fp32", "int8", "torchscript", "fp32-opt", "int8-dynamic", "fp16",
        ]  # fmt: skip
        assert report["task"] == "classification"
        assert all(v["cost_per_1k"] > 0 for v in report["variants"])
        again = (await client.get("/v2/models/digits/variants")).json()
        assert again["created_at"] == report["created_at"]  # the same files: the stored report
        assert len(list((tmp_path / "reports").glob("digits-*.json"))) == 1
        plot = await client.get("/v2/models/digits/variants/plot.png")
        assert plot.headers["content-type"] == "image/png"
        assert plot.content.startswith(b"\x89PNG")
        metrics = (await client.get("/metrics")).text
        accuracy = report["variants"][1]["quality"]["accuracy"]
        assert f'servometer_variant_quality{{metric="accuracy",model="digits",variant="int8"}} {accuracy}' in metrics
        latency = 'servometer_variant_report_latency_seconds{batch="1",model="digits",quantile="0.5",variant="fp16"}'
        assert latency in metrics


async def test_a_model_without_an_evaluation_block_or_unknown_gets_a_clear_4xx(tmp_path, demo_models):
    folder = copy_model("digits", tmp_path / "models")
    manifest = yaml.safe_load((folder / "model.yaml").read_text())
    del manifest["evaluation"]
    (folder / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    async with async_app(tmp_path / "models") as (_, client):
        response = await client.get("/v2/models/digits/variants")
        assert response.status_code == 400
        assert "no 'evaluation' block" in response.json()["error"]
        assert (await client.get("/v2/models/nope/variants")).status_code == 404
