"""Batching through a real server: many concurrent clients, mixed sample counts, every variant of both models."""

import asyncio

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import (
    assert_batched_equals_alone,
    digits_images,
    minilm_tokens,
    reference_outputs,
    running_server,
    v2_json,
)

# Largest difference between a request computed alone and inside a batch, for batch-invariant variants. ONNX
# Runtime's digits kernels and both static-int8 variants are batch-invariant to the bit; MiniLM fp32 and TorchScript
# pick GEMM blockings by batch size, which reorders float sums (measured: 4.5e-8 and 1.3e-5), as do fp16 and
# MiniLM's fp32-opt (1.2e-7, 3e-8, 1.5e-8). Dynamic int8 moves with its batch companions (a digits logit by up
# to 5.1 over 2,000 compositions), so its model.yaml says batch_dependent and each request is computed alone.
VARIANTS = [
    ("digits", "fp32", "model.fp32.onnx", 0.0),
    ("digits", "int8", "model.int8.onnx", 0.0),
    ("digits", "torchscript", "model.torchscript.pt", 1e-4),
    ("minilm-ids", "fp32", "model.fp32.onnx", 1e-6),
    ("minilm-ids", "int8", "model.int8.onnx", 1e-6),
    ("minilm-ids", "int4", "model.int4.onnx", 1e-6),
    ("digits", "fp32-opt", "model.fp32-opt.onnx", 0.0),
    ("digits", "int8-dynamic", "model.int8-dynamic.onnx", 0.0),
    ("digits", "fp16", "model.fp16.onnx", 1e-6),
]
CLIENTS = 48


@pytest.fixture(scope="module")
def server(demo_models, tmp_path_factory):
    with running_server(demo_models, log=tmp_path_factory.mktemp("server") / "server.log") as address:
        yield address


def _requests(model: str) -> list[dict[str, np.ndarray]]:
    sizes = [1 + (i * 7) % 4 for i in range(CLIENTS)]
    if model == "digits":
        images = digits_images(CLIENTS * 4)
        return [{"image": images[i * 4 : i * 4 + n]} for i, n in enumerate(sizes)]
    tokens = minilm_tokens(8)
    return [{name: np.roll(array, i, axis=0)[:n] for name, array in tokens.items()} for i, n in enumerate(sizes)]


def _outputs(response: httpx.Response, like: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {
        output["name"]: np.array(output["data"], dtype=like[output["name"]].dtype).reshape(like[output["name"]].shape)
        for output in response.json()["outputs"]
        if output["name"] in like  # the model file's outputs; the steps' ones are tested in tests/processing
    }


def _sized_requests(model: str) -> list[tuple[dict[str, np.ndarray], dict[str, object]]]:
    """One request of every legal size (1 to max_batch_size), MiniLM's of several sequence lengths, some with a
    queue timeout or a priority: the mix the batcher must split back exactly."""
    if model == "digits":
        pool = digits_images(360)
        sizes = range(1, 65)
        inputs = [{"image": np.take(pool, np.arange(n) + 5 * n, axis=0, mode="wrap")} for n in sizes]
    else:
        tokens = minilm_tokens(8)
        sizes = range(1, 33)
        inputs = [
            {name: np.take(array, np.arange(n) + n, axis=0, mode="wrap")[:, : (4, 8, 12, 64)[n % 4]]
             for name, array in tokens.items()}
            for n in sizes
        ]  # fmt: skip
    parameters: list[dict[str, object]] = [
        {}, {"timeout": 60_000_000}, {"priority": 1}, {"timeout": 60_000_000, "priority": 0}
    ]  # fmt: skip
    return [(feed, parameters[n % 4]) for n, feed in enumerate(inputs)]


@pytest.mark.parametrize(("model", "file", "tolerance"), [("digits", "model.fp32.onnx", 0.0),
                                                         ("minilm-ids", "model.fp32.onnx", 1e-6)])  # fmt: skip
async def test_a_request_of_every_legal_size_is_answered_with_its_own_rows_alone_and_mixed(
    server, model, file, tolerance
):
    """A request bigger than a preferred size it could be trimmed to once froze the whole server (17 samples with
    preferred sizes 16, 32, 64)."""
    requests = _sized_requests(model)
    url = f"http://{server}/v2/models/{model}/infer"
    limits = httpx.Limits(max_connections=len(requests))
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        alone_first = [await client.post(url, json={**v2_json(feed), "parameters": p}) for feed, p in requests[:20]]
        mixed = await asyncio.gather(
            *(client.post(url, json={**v2_json(feed), "parameters": p}) for feed, p in requests)
        )
        assert (await client.get(f"http://{server}/v2/health/ready")).status_code == 200
    answers = []
    for (feed, _), response in [*zip(requests, alone_first, strict=False), *zip(requests, mixed, strict=True)]:
        assert response.status_code == 200, response.text
        alone = reference_outputs(model, file, feed)
        answers.append((_outputs(response, alone), alone))
    assert_batched_equals_alone(answers, tolerance)


def _batch_count(server: str, model: str, variant: str) -> float:
    for family in text_string_to_metric_families(httpx.get(f"http://{server}/metrics").text):
        for sample in family.samples:
            if sample.name == "servometer_batch_size_count" and sample.labels == {"model": model, "variant": variant}:
                return sample.value
    return 0.0


@pytest.mark.parametrize(("model", "variant", "file", "tolerance"), VARIANTS)
async def test_concurrent_requests_are_batched_and_each_answer_equals_running_it_alone(
    server, model, variant, file, tolerance
):
    requests = _requests(model)
    batches_before = _batch_count(server, model, variant)
    url = f"http://{server}/v2/models/{model}/versions/{variant}/infer"
    limits = httpx.Limits(max_connections=CLIENTS)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        responses = await asyncio.gather(*(client.post(url, json=v2_json(inputs)) for inputs in requests))
    answers = []
    for inputs, response in zip(requests, responses, strict=True):
        assert response.status_code == 200, response.text
        alone = reference_outputs(model, file, inputs)
        answers.append((_outputs(response, alone), alone))
    assert_batched_equals_alone(answers, tolerance)
    batches = _batch_count(server, model, variant) - batches_before
    if variant == "int8-dynamic":  # batch_dependent in its model.yaml: one client may not move another's answer
        assert batches == CLIENTS, f"{CLIENTS} concurrent requests ran as {batches} model calls, not one each"
    else:
        assert 0 < batches < CLIENTS, f"{CLIENTS} concurrent requests ran as {batches} model calls"
