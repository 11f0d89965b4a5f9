"""A bounded soak: minutes of mixed traffic on a real server with Redis restarted once, a broken reload refused,
and a model unloaded and loaded back. Every response is either correct or a deliberate 4xx/503, and the
server's memory returns to where it started.

``SERVOMETER_SOAK_S`` sets the traffic's length: 30 s by default (in every ``make test``), 300 s with
``make soak``.
"""

import os
import random
import threading
import time
from collections import Counter

import httpx

from tests.helpers import copy_model, digits_images, reference_outputs, resident_bytes, server_process, v2_json

SOAK_S = float(os.environ.get("SERVOMETER_SOAK_S", "30"))
ADMIN = "management-key-0123456789abcdef"
POOL = 64  # distinct images: repeats make cache hits, the rest misses


def test_mixed_traffic_through_redis_restart_and_model_reloads_is_always_answered_right(
    demo_models, tmp_path, redis_server
):
    repository = tmp_path / "models"
    copy_model("digits", repository)
    images = digits_images(POOL)
    expected = reference_outputs("digits", "model.fp32.onnx", {"image": images})["label"]
    env = {
        "SERVOMETER_CACHE_BACKEND": "redis",
        "SERVOMETER_REDIS_URL": redis_server.url,
        "SERVOMETER_MANAGEMENT_API_KEY": ADMIN,
    }
    outcomes: Counter[str] = Counter()
    wrong: list[str] = []
    stop = threading.Event()

    def client_loop(seed: int, address: str) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=f"http://{address}", timeout=30) as client:
            while not stop.is_set():
                index = rng.randrange(POOL)
                if rng.random() < 0.05:  # bad input: a deliberate 400
                    response = client.post("/v2/models/digits/infer", json={"inputs": []})
                    deliberate = response.status_code in (400, 404, 503)  # 404 / 503 while unloaded or reloading
                    outcome = str(response.status_code) if deliberate else f"unexpected {response.status_code}"
                else:
                    response = client.post(
                        "/v2/models/digits/infer", json=v2_json({"image": images[index : index + 1]})
                    )
                    if response.status_code == 200:
                        label = next(o for o in response.json()["outputs"] if o["name"] == "label")["data"]
                        outcome = "200" if label == [int(expected[index])] else "wrong answer"
                    elif response.status_code in (404, 503):  # unloaded / reloading: deliberate
                        outcome = str(response.status_code)
                    else:
                        outcome = f"unexpected {response.status_code}: {response.text[:200]}"
                outcomes[outcome.split(":")[0]] += 1
                if outcome not in ("200", "400", "404", "503"):
                    wrong.append(outcome)

    with server_process(repository, env=env, log=tmp_path / "server.log") as (process, address):
        admin = httpx.Client(base_url=f"http://{address}", headers={"authorization": f"Bearer {ADMIN}"}, timeout=60)
        threads = [threading.Thread(target=client_loop, args=(n, address)) for n in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(min(10, SOAK_S / 6))  # warm-up: caches, allocator pools
        start_memory = resident_bytes(process.pid)
        phase = SOAK_S / 5
        time.sleep(phase)
        redis_server.kill()  # Redis dies mid-traffic ...
        time.sleep(phase / 2)
        redis_server.start()  # ... and comes back on the same port
        time.sleep(phase / 2)
        model = repository / "digits" / "model.fp32.onnx"
        good = model.read_bytes()
        model.write_bytes(b"not an onnx model")  # a broken rebuild: the reload is refused, the old one serves
        assert admin.post("/v2/repository/models/digits/load").status_code == 503
        model.write_bytes(good)
        time.sleep(phase)
        assert admin.post("/v2/repository/models/digits/unload").status_code == 200  # clients now get 404
        time.sleep(1)
        assert admin.post("/v2/repository/models/digits/load").status_code == 200
        time.sleep(phase)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        time.sleep(2)
        end_memory = resident_bytes(process.pid)
        admin.close()
    assert not wrong, Counter(wrong).most_common(5)
    assert outcomes["200"] > 1000
    assert outcomes["400"] > 0
    assert outcomes["404"] > 0  # the unload was seen, and answered deliberately
    growth = end_memory - start_memory
    assert growth < 48 * 2**20, f"memory grew {growth / 2**20:.1f} MiB over the soak: {outcomes}"
