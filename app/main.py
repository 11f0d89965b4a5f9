"""``create_app``: the FastAPI application, with models loading in the background after start-up.

Loading off the start-up path lets liveness answer at once while a large model loads; readiness stays false
(and inference answers 503) until loading is done.
"""

import asyncio
import gc
import logging
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from app import __version__, shutdown
from app.api import router
from app.api.bodies import buffered
from app.api.connections import ConnectionLimits, fit_to_descriptors
from app.api.docs import install_docs
from app.api.error_responses import install_error_handlers
from app.api.infer import InferenceEndpoint, Message, Receive, Scope, Send, match_infer
from app.api.metrics_endpoint import serve_metrics_port
from app.api.openapi import install_openapi
from app.api.security import bearer, refuse, with_security_headers
from app.cache.setup import build_cache
from app.config import Settings
from app.context import AppContext
from app.describe import describe
from app.errors import ServingError
from app.grpc_api.server import start_grpc
from app.keys import KeyCheck
from app.live.documents import Documents, sampled_timeline
from app.live.pages import LivePage
from app.monitoring.drift import evaluate_due
from app.monitoring.judged import DirectoryJudged, JudgedIds, MemoryJudged, RedisJudged
from app.monitoring.ledger import FeedbackLedger
from app.repository.registry import Registry
from app.routing.router import Router
from app.routing.shadow import Shadows
from app.runtimes.base import runtime_options
from app.service import InferenceService
from app.telemetry.gpu import GpuSampler, load_nvml
from app.telemetry.loop_lag import LoopWatch
from app.telemetry.metrics import Metrics
from app.telemetry.request_ids import HEADER, REQUEST_ID, request_id_of
from app.telemetry.timeline import Timeline
from app.variants.latest_reports import VariantReports
from app.workers import WorkerReadiness

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    registry = Registry(settings.models, runtime_options(settings), settings.allow_model_code)
    metrics = Metrics(settings.latency_buckets)
    cache = build_cache(settings, metrics)
    reports = VariantReports(
        registry, metrics, settings.price_per_hour, settings.report_dir or settings.models / ".reports"
    )
    workers = WorkerReadiness(settings.worker_dir, settings.workers)
    secret = settings.feedback_secret.encode() if settings.feedback_secret else None
    judged = judged_ids(settings)
    service = InferenceService(
        registry,
        metrics,
        cache,
        Router(reports),
        Shadows(metrics),
        workers,
        FeedbackLedger(secret, judged),
        settings.max_json_values,
    )
    gpus = GpuSampler(metrics, load_nvml(), settings.gpu_sample_interval_s)
    timeline = sampled_timeline(metrics) if settings.ui else None
    live = None if timeline is None else LivePage(Documents(registry, timeline, settings.workers), reports)
    context = AppContext(settings, registry, service, metrics, gpus, reports, live)
    inference = InferenceEndpoint(context)
    keys = KeyCheck(settings.api_keys, settings.management_api_key, settings.feedback_api_key, settings.public_paths)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        watch = LoopWatch(metrics.loop_lag, settings.loop_lag_interval_s, settings.loop_stall_s, sys.stderr)
        with watch.watching(asyncio.get_running_loop()):
            # First: a gRPC port held by another program stops the start before anything else has begun.
            grpc_server = await start_grpc(context, keys) if settings.grpc_port else None
            registry.scan()
            loading = asyncio.create_task(_load(registry, service, reports, settings))
            gpus.start()
            flushing = asyncio.create_task(_flush_every(metrics, FLUSH_INTERVAL_S, timeline))
            drift = asyncio.create_task(_drift_every(service, DRIFT_TICK_S))
            metrics_server = None if settings.metrics_port is None else await serve_metrics_port(context)
            forget_drain = shutdown.on_drain(lambda: service.begin_drain(shutdown.remaining(settings.drain_timeout_s)))
            try:
                yield
            finally:
                forget_drain()
                if grpc_server is not None:
                    # New calls are refused from here; those in flight finish within the drain time.
                    await grpc_server.stop(shutdown.remaining(settings.drain_timeout_s))
                if metrics_server is not None:
                    metrics_server.close()
                loading.cancel()
                flushing.cancel()
                drift.cancel()
                await gpus.close()
                metrics.close()
                inference.disconnects.close()
                await reports.close()
                await service.close(shutdown.remaining(settings.drain_timeout_s))
                if cache is not None:
                    await cache.close()
                await judged.close()
                registry.close()

    app = ServometerApp(
        inference,
        keys,
        settings.cors_origins,
        settings.body_timeout_s,
        ConnectionLimits(
            settings.max_header_bytes,
            settings.header_timeout_s,
            settings.body_timeout_s,
            fit_to_descriptors(settings.max_connections),
        ),
        title="Servometer",
        version=__version__,
        description="Open Inference Protocol (KServe v2) gateway with built-in performance telemetry.",
        lifespan=lifespan,
        docs_url=None,  # served from a package instead of a CDN: app/api/docs.py
        redoc_url=None,
    )
    app.state.context = context
    install_error_handlers(app)
    install_openapi(app)
    install_docs(app)
    app.include_router(router)
    return app


class ServometerApp(FastAPI):
    """FastAPI for every route but inference, which :class:`InferenceEndpoint` answers before FastAPI's stack.
    API keys are checked here, before either."""

    def __init__(
        self,
        inference: InferenceEndpoint,
        keys: KeyCheck,
        cors_origins: list[str],
        body_timeout_s: float,
        connection_limits: ConnectionLimits,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.inference = inference
        self.keys = keys
        self.body_timeout_s = body_timeout_s
        self.connection_limits = connection_limits  # read by each connection: app/api/connections.py
        # CORS outermost, so a browser's preflight is answered before any key is asked for; off unless configured.
        self._entry: ASGIApp = self._dispatch
        if cors_origins:
            self._entry = CORSMiddleware(
                self._dispatch, allow_origins=cors_origins, allow_methods=["GET", "POST"],
                allow_headers=["authorization", "content-type", "inference-header-content-length", "x-request-id"],
                expose_headers=["x-request-id", "servometer-variant", "servometer-response-id", "servometer-cache"],
            )  # fmt: skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._entry(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            request_id = request_id_of(scope["headers"])
        except ValueError as exc:
            await refuse(send, 400, str(exc), scope["path"])
            return
        if request_id is not None:
            REQUEST_ID.set(request_id.decode())  # this request's task only: each request runs in its own
            send = _echo_request_id(send, request_id)
        if "\0" in scope["path"]:  # no name has one; file system calls would fail on it deep inside a route
            await refuse(send, 400, "the path contains a null byte (%00)", scope["path"])
            return
        if self.keys.enabled or scope["path"].startswith("/v2/repository"):
            refusal = self.keys.refusal(self.keys.access_for(scope["path"]), bearer(scope))
            if refusal is not None:
                await refuse(send, *refusal, scope["path"])
                return
        match = match_infer(scope)
        if match is not None:
            await self.inference(match, scope, receive, send)
            return
        try:
            receive = await buffered(scope, receive, self.body_timeout_s)
        except ServingError as exc:
            await refuse(send, exc.status, exc.message, scope["path"])
            return
        await super().__call__(scope, receive, with_security_headers(send))


def judged_ids(settings: Settings) -> JudgedIds:
    """Where judged answers are recorded: as widely as feedback ids are accepted (see app/monitoring/judged.py)."""
    if settings.redis_url:
        return RedisJudged(settings.redis_url, settings.redis_key_prefix, settings.redis_timeout_s)
    if settings.worker_dir is not None:
        return DirectoryJudged(settings.worker_dir.parent / "judged")
    return MemoryJudged()


def _echo_request_id(send: Send, request_id: bytes) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), (HEADER, request_id)]
        await send(message)

    return sending


FLUSH_INTERVAL_S = 1.0
"""How stale metrics may be between scrapes: with several workers, each worker's files are read by whichever
worker answers the scrape, so every worker moves its pending observations into them this often."""


DRIFT_TICK_S = 0.5
"""How often the drift loop checks which monitors' ``interval_s`` has passed."""


async def _drift_every(service: InferenceService, tick_s: float) -> None:
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(tick_s)
        try:
            await evaluate_due(service.monitors, loop.time(), service.metrics)
        except Exception:  # a drift score is never a reason for serving to stop
            log.exception("computing drift scores failed")


async def _flush_every(metrics: Metrics, interval_s: float, timeline: Timeline | None) -> None:
    """Also where the live page's timeline is sampled: right after a flush, so it reads what a scrape would."""
    while True:
        await asyncio.sleep(interval_s)
        metrics.flush()
        if timeline is not None:
            try:
                timeline.sample(time.time())
            except Exception:  # the page's history is never a reason for metrics to stop flowing
                log.exception("sampling the live page's timeline failed")


async def _load(registry: Registry, service: InferenceService, reports: VariantReports, settings: Settings) -> None:
    await anyio.to_thread.run_sync(registry.load_all)
    await service.start()
    describe(registry.models(), service.metrics, service.cache.metrics if service.cache else None, settings)
    reports.build_in_background(
        [
            entry.name
            for entry in registry.models()
            if entry.manifest is not None
            and entry.manifest.evaluation is not None
            and (settings.report_at_load or entry.manifest.routing.policy == "fastest_within")
        ]
    )
    # Everything loaded so far (frameworks, models) lives as long as the process. Frozen, it is no longer
    # walked by every full garbage collection, which otherwise stalls all requests for tens of milliseconds.
    gc.freeze()
    log.info("model repository loaded: %s", ", ".join(e.name for e in registry.models()) or "no models")
