"""What a request costs Servometer beyond HTTP itself, part of ``python -m bench.run`` (``make bench``):

- reference rows beside Servometer's: the bare ASGI floor (the same uvicorn answering Servometer's own response
  bytes) and a hand-written FastAPI + orjson endpoint calling the same ONNX Runtime session;
- Servometer with the model's own model.yaml (cache and monitoring on, as users run it) and every request new;
- the defaults against the same server with cache and monitoring off, alternated five times, with every request
  new and with 80% of them repeating;
- the revision before this work (``BEFORE``) against the checkout, alternated, on the same load.
"""

import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from bench import loadgen, payloads, servers

BEFORE = "1dd4c38"
"""The last commit before the request path's cost was worked on (issue 16)."""
ROUNDS = 5
PORT = 8390
Bodies = dict[str, tuple[Path, int | None]]


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def capture(address: str, model: str, bodies: Bodies, out: Path) -> dict[str, tuple[Path, str, int | None]]:
    """Servometer's answer to each body, as wrk receives it (no compression): what the floor answers with."""
    answers = {}
    for tensors, (body, header_length) in bodies.items():
        headers = {"accept-encoding": "identity", "content-type": "application/json"}
        if header_length is not None:
            headers |= {
                "content-type": "application/octet-stream",
                "inference-header-content-length": str(header_length),
            }
        response = httpx.post(f"http://{address}/v2/models/{model}/infer", content=body.read_bytes(), headers=headers)
        response.raise_for_status()
        saved = out / f"{model}.{tensors}.response"
        saved.write_bytes(response.content)
        length = response.headers.get("inference-header-content-length")
        answers[tensors] = (saved, response.headers["content-type"], None if length is None else int(length))
    return answers


def rows_for(
    server: str, address: str, model: str, bodies: Bodies, concurrency: list[int], seconds: float, warmup: float,
    vary: bool = False,
) -> list[dict[str, Any]]:  # fmt: skip
    """One row per tensor format and concurrency; ``vary`` makes every request new."""
    rows = []
    url = f"http://{address}/v2/models/{model}/infer"
    for tensors, (body, header_length) in bodies.items():
        varied = loadgen.varying(body.read_bytes(), header_length) if vary else None
        for clients in concurrency:
            progress(f"  {server} {model} {tensors} c={clients}")
            loadgen.wrk(url, body, header_length, clients, warmup, varied)
            result = loadgen.wrk(url, body, header_length, clients, seconds, varied)
            rows.append({"server": server, "tensors": tensors, "concurrency": clients, **asdict(result)})
    return rows


def reference_rows(
    model: str, answers: dict[str, tuple[Path, str, int | None]], bodies: Bodies, args: Any, out: Path
) -> list[dict[str, Any]]:
    """The hand-written endpoint and the bare ASGI floor, under the same load as Servometer's rows."""
    model_file = payloads.repository(model) / model / "model.fp32.onnx"
    rows = []
    with servers.handwritten(model_file, PORT, out / "handwritten.log") as address:
        rows += rows_for("hand-written (FastAPI + orjson)", address, model, bodies, args.concurrency, args.seconds,
                         args.warmup)  # fmt: skip
    for tensors, (response, content_type, header_length) in answers.items():
        with servers.bare(response, content_type, header_length, PORT + 1, out / "bare.log") as address:
            rows += rows_for("bare ASGI (floor)", address, model, {tensors: bodies[tensors]}, args.concurrency,
                             args.seconds, args.warmup)  # fmt: skip
    return rows


def defaults_rows(model: str, bodies: Bodies, args: Any, out: Path) -> list[dict[str, Any]]:
    """Servometer as the model's model.yaml configures it (result cache in memory), every request new."""
    with servers.servometer(payloads.repository(model), PORT + 2, out / "defaults.log", DEFAULTS) as address:
        return rows_for("servometer (defaults on, unique inputs)", address, model, bodies, args.concurrency,
                        args.seconds, args.warmup, vary=True)  # fmt: skip


DEFAULTS = {"SERVOMETER_CACHE_BACKEND": "memory"}


def alternate(
    contenders: dict[str, Callable[[], AbstractContextManager[str]]],
    model: str,
    body: tuple[Path, int | None],
    concurrency: int,
    args: Any,
    repeat_share: float | None = 0.0,
) -> dict[str, Any]:
    """Requests/s (and p50) of each contender under the same load, over ``ROUNDS`` rounds, each round starting
    with the next contender; ``repeat_share`` None sends the same body every time, else every request new but
    that share of them repeating one of 200 popular ones."""
    file, header_length = body
    vary = None if repeat_share is None else loadgen.varying(file.read_bytes(), header_length, repeat_share)
    names = list(contenders)
    rates: dict[str, list[float]] = {name: [] for name in names}
    p50s: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(ROUNDS):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            with contenders[name]() as address:
                url = f"http://{address}/v2/models/{model}/infer"
                loadgen.wrk(url, file, header_length, concurrency, args.warmup, vary)
                measured = loadgen.wrk(url, file, header_length, concurrency, args.seconds, vary)
                if measured.errors:
                    raise RuntimeError(f"{name}: {measured.errors} errors under load")
                rates[name].append(measured.requests_per_s)
                p50s[name].append(measured.p50_s)
                progress(f"  {name} {model} c={concurrency} ({round_ + 1}/{ROUNDS}): {measured.requests_per_s:,.0f}/s")
    return {
        "model": model,
        "concurrency": concurrency,
        "rates": rates,
        "medians": {name: statistics.median(values) for name, values in rates.items()},
        "p50_medians": {name: statistics.median(values) for name, values in p50s.items()},
    }


def defaults_against_off(bodies: Bodies, args: Any, out: Path) -> dict[str, Any]:
    """digits, binary, concurrency 64: the demo's own configuration against cache and monitoring off."""
    stripped = servers.repository_stripped(payloads.MODELS, out / "repository-stripped")
    contenders = {
        "defaults": lambda: servers.servometer(payloads.MODELS, PORT + 3, out / "defaults.log", DEFAULTS),
        "off": lambda: servers.servometer(stripped, PORT + 4, out / "stripped.log", DEFAULTS),
    }
    found = {}
    for label, share in (("unique", 0.0), ("repeated 80%", 0.8)):
        progress(f"digits: defaults against cache and monitoring off, {label}")
        found[label] = alternate(contenders, "digits", bodies["binary"], 64, args, share)
    return found


def against_before(tree: Path, model: str, body: tuple[Path, int | None], args: Any, out: Path) -> dict[str, Any]:
    """The revision before this work and the checkout on the same model and bodies, at concurrency 64 and 1."""
    repository = payloads.repository(model)
    contenders = {
        BEFORE: lambda: servers.servometer_at(tree, repository, PORT + 5, out / "before.log"),
        "now": lambda: servers.servometer(repository, PORT + 6, out / "now.log"),
    }
    tensors = "binary" if body[1] is not None else "json"
    found = {}
    for concurrency in (64, 1):
        progress(f"{model}: {BEFORE} against the checkout, c={concurrency}")
        found[f"{model} {tensors}, c={concurrency}"] = alternate(contenders, model, body, concurrency, args, None)
    return found
