"""Readiness tells the truth from the first moment: whenever a variant (or the server) answers ready, an inference
on it is served. Probed from the moment the process starts, while its models load and warm up."""

import time

import httpx

from tests.helpers import digits_images, minilm_tokens, server_process, v2_json

PROBED = [
    ("digits", "fp32"),
    ("digits", "int8"),
    ("digits", "torchscript"),
    ("minilm-ids", "fp32"),
    ("minilm-ids", "int8"),
]


def test_a_variant_that_answers_ready_serves_inference_at_once(demo_models, tmp_path):
    bodies = {"digits": v2_json({"image": digits_images(1)}), "minilm-ids": v2_json(minilm_tokens(1))}
    confirmed: set[str] = set()
    with (
        server_process(demo_models, log=tmp_path / "server.log", wait=False) as (process, address),
        httpx.Client(base_url=f"http://{address}", timeout=30) as client,
    ):
        deadline = time.monotonic() + 120
        while len(confirmed) < len(PROBED) + 1:
            assert time.monotonic() < deadline, f"only {sorted(confirmed)} became ready"
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            try:
                for model, variant in PROBED:
                    if client.get(f"/v2/models/{model}/versions/{variant}/ready").status_code == 200:
                        served = client.post(f"/v2/models/{model}/versions/{variant}/infer", json=bodies[model])
                        assert served.status_code == 200, f"{model}/{variant} said ready, then: {served.text}"
                        confirmed.add(f"{model}/{variant}")
                if client.get("/v2/health/ready").status_code == 200:
                    for model, body in bodies.items():
                        served = client.post(f"/v2/models/{model}/infer", json=body)
                        assert served.status_code == 200, f"the server said ready, then {model}: {served.text}"
                    confirmed.add("server")
            except httpx.TransportError:  # not listening yet
                pass
            time.sleep(0.02)  # leave the cores to the loading models
