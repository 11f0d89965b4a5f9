"""Two real gateway processes sharing one real Redis: what one computed is a hit on the other."""

import contextlib
import time

import httpx
import numpy as np

from tests.helpers import digits_images, running_server


def test_a_result_computed_by_one_gateway_is_a_hit_on_the_other(demo_models, redis_server, tmp_path):
    env = {"SERVOMETER_REDIS_URL": redis_server.url}
    image = digits_images(3)[2:3]
    body = {
        "inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": image.reshape(-1).tolist()}]
    }
    with contextlib.ExitStack() as stack:
        first, second = (
            stack.enter_context(running_server(demo_models, env=env, log=tmp_path / f"gateway-{n}.log")) for n in (1, 2)
        )
        computed = httpx.post(f"http://{first}/v2/models/digits/infer", json=body)
        assert computed.headers["servometer-cache"] == "miss"
        deadline = time.monotonic() + 10
        while True:
            shared = httpx.post(f"http://{second}/v2/models/digits/infer", json=body)
            if shared.headers["servometer-cache"] == "hit":
                break
            assert time.monotonic() < deadline, "the second gateway never saw the first one's result"
            time.sleep(0.05)
        for a, b in zip(computed.json()["outputs"], shared.json()["outputs"], strict=True):
            np.testing.assert_array_equal(np.array(a["data"]), np.array(b["data"]))
