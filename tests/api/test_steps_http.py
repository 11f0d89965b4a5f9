"""A model's processing steps over HTTP: a failing step fails only the requests it fails on, with a 500 naming the
step, while the requests batched with them are answered; model code runs only when the operator allows it."""

import asyncio

import numpy as np
import orjson
import yaml

from tests.api.conftest import async_app
from tests.helpers import copy_model, digits_images

JSON = {"content-type": "application/json"}
NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
PROGRAM = """
import numpy as np

def check(tensors):
    # A marker the test sends: an image whose first pixel is 99 fails this step for the batch holding it.
    if (tensors["image"][:, 0, 0, 0] == 99).any():
        raise ValueError("first pixel 99")
    return {"checked": np.ones(len(tensors["image"]), dtype=np.float32)}
"""


def _repository(tmp_path):
    digits = copy_model("digits", tmp_path / "models")
    (digits / "process.py").write_text(PROGRAM)
    manifest = yaml.safe_load((digits / "model.yaml").read_text())
    manifest["variants"] = [v for v in manifest["variants"] if v["name"] == "fp32"]
    manifest["outputs"].append({"name": "checked", "datatype": "FP32", "shape": [-1]})
    manifest["steps"]["before"] = [{"kind": "python", "function": "check", "inputs": ["image"], "outputs": [
        {"name": "checked", "datatype": "FP32", "shape": [-1]}]}]  # fmt: skip
    manifest["batching"]["max_queue_delay_ms"] = 50  # the concurrent requests below share one batch
    (digits / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return tmp_path / "models"


def _body(images: np.ndarray) -> bytes:
    tensor = {"name": "image", "datatype": "FP32", "shape": list(images.shape), "data": images.reshape(-1).tolist()}
    outputs = [{"name": "class_name"}, {"name": "label"}, {"name": "checked"}]
    return orjson.dumps({"inputs": [tensor], "outputs": outputs})


async def test_a_failing_step_fails_only_its_requests_with_a_500_naming_the_step(demo_models, tmp_path):
    async with async_app(_repository(tmp_path), allow_model_code=True) as (_, client):
        good = digits_images(4)
        bad = digits_images(1).copy()
        bad[0, 0, 0, 0] = 99
        bodies = [_body(good[i : i + 1]) for i in range(4)] + [_body(bad)]
        responses = await asyncio.gather(*(client.post("/v2/models/digits/infer", content=b, headers=JSON)
                                           for b in bodies))  # fmt: skip
        assert [r.status_code for r in responses] == [200, 200, 200, 200, 500]
        assert responses[4].json()["error"] == (
            "processing step 'python' before the model failed on this request "
            "(ValueError; the server's log has the error)"
        )
        for response in responses[:4]:
            name, label, checked = (output["data"][0] for output in response.json()["outputs"])
            assert name == NAMES[label]
            assert checked == 1.0


async def test_a_model_with_a_python_step_is_not_served_unless_model_code_is_allowed(demo_models, tmp_path):
    async with async_app(_repository(tmp_path)) as (_, client):
        response = await client.post("/v2/models/digits/infer", content=_body(digits_images(1)), headers=JSON)
        assert response.status_code == 503
        assert "model code is off (set SERVOMETER_ALLOW_MODEL_CODE=true" in response.json()["error"]
