"""The ``servometer`` command: ``serve``, ``models build``, ``optimize`` and ``report``.

Flags override ``SERVOMETER_*`` environment variables, which override the defaults in :class:`Settings`.
"""

import argparse
import contextlib
import copy
import math
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import uvicorn
import uvicorn.config

from app.api.connections import GuardedHttpProtocol
from app.config import Settings
from app.repository.builder import build_models
from app.runtimes.base import RuntimeLoadError, runtime_options
from app.schema.manifest import ManifestError, load_manifest
from app.shutdown import DrainingServer
from app.variants.optimize import KINDS, Kind

# CLI flag -> settings field. Flags are exported as SERVOMETER_* so every uvicorn worker builds the same Settings.
_SERVE_FLAGS = ("host", "port", "grpc_port", "models", "workers", "log_level")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="servometer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the model repository over HTTP and gRPC")
    serve.add_argument("--host", help="address to bind (SERVOMETER_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (SERVOMETER_PORT, default 8000)")
    serve.add_argument(
        "--grpc-port", type=int, help="gRPC port on the same host, 0 for none (SERVOMETER_GRPC_PORT, default 8001)"
    )
    serve.add_argument("--models", type=Path, help="model repository (SERVOMETER_MODELS, default ./models)")
    serve.add_argument("--workers", type=int, help="uvicorn worker processes (SERVOMETER_WORKERS, default 1)")
    serve.add_argument("--log-level", help="log level (SERVOMETER_LOG_LEVEL, default info)")
    serve.add_argument("--no-build", action="store_true", help="do not build missing model files first")

    models = commands.add_parser("models", help="manage the model repository")
    models_commands = models.add_subparsers(dest="models_command", required=True)
    build = models_commands.add_parser("build", help="build the models' variant files")
    build.add_argument("names", nargs="*", help="models to build (default: all)")
    build.add_argument("--models", type=Path, help="model repository (SERVOMETER_MODELS, default ./models)")
    build.add_argument("--force", action="store_true", help="rebuild even when the files exist")

    optimize = commands.add_parser("optimize", help="produce optimized variants, checked against the reference")
    optimize.add_argument("model", help="the model's name (its folder in the repository)")
    optimize.add_argument("--models", type=Path, help="model repository (SERVOMETER_MODELS, default ./models)")
    optimize.add_argument("--source", type=Path, help="ONNX or TorchScript file (default: the reference variant's)")
    optimize.add_argument("--kinds", help=f"comma-separated, default all that fit the source: {', '.join(KINDS)}")

    report = commands.add_parser("report", help="measure every variant: quality, latency, throughput, cost, size")
    report.add_argument("model", help="the model's name (its folder in the repository)")
    report.add_argument("--models", type=Path, help="model repository (SERVOMETER_MODELS, default ./models)")
    report.add_argument("--output", type=Path, help="also write MODEL-variants.{md,json,png} into this folder")

    args = parser.parse_args(argv)
    {"serve": _serve, "models": _build, "optimize": _optimize, "report": _report}[args.command](args)


def _settings(args: argparse.Namespace, flags: Sequence[str]) -> Settings:
    overrides = {name: getattr(args, name) for name in flags if getattr(args, name, None) is not None}
    return Settings(**overrides)


def _build(args: argparse.Namespace) -> None:
    settings = _settings(args, ("models",))
    try:
        results = build_models(settings.models, args.names or None, force=args.force)
    except (ValueError, RuntimeError) as exc:
        sys.exit(f"servometer models build: {exc}")
    for result in results:
        print(f"{result.model}: {result.detail}")  # noqa: T201 - CLI output


def _optimize(args: argparse.Namespace) -> None:
    from app.variants.optimize import optimize

    settings = _settings(args, ("models",))
    kinds: dict[Kind, str] | None = None
    if args.kinds is not None:
        names = [kind.strip() for kind in args.kinds.split(",")]
        unknown = sorted(set(names) - set(KINDS))
        if unknown:
            sys.exit(f"servometer optimize: unknown kinds {unknown}; expected some of {', '.join(KINDS)}")
        kinds = {cast(Kind, kind): kind for kind in names}
    try:
        outcomes = optimize(settings.models / args.model, kinds, args.source, runtime_options(settings), _say)
    except (ValueError, OSError, ManifestError) as exc:
        sys.exit(f"servometer optimize: {exc}")
    kept = [o.name for o in outcomes if o.kept]
    _say(f"{args.model}: kept {', '.join(kept) or 'none'}; model.yaml updated")


def _report(args: argparse.Namespace) -> None:
    from app.variants.plot import PlottingUnavailable, plot_png
    from app.variants.report import ReportStore, build_report, report_key

    settings = _settings(args, ("models",))
    folder = settings.models / args.model
    try:
        manifest = load_manifest(folder)
        store = ReportStore(settings.report_dir or settings.models / ".reports")
        key = report_key(folder, manifest, settings.price_per_hour) if manifest.evaluation else ""
        report = store.get(args.model, key)
        if report is None:
            _say(f"measuring {len(manifest.variants)} variants of {args.model} (quality, latency, memory)")
            names = [v.name for v in manifest.variants if (folder / v.file).is_file()]
            report = build_report(folder, manifest, runtime_options(settings), settings.price_per_hour, names)
            store.put(report)
    except (ValueError, OSError, ManifestError, RuntimeLoadError) as exc:
        sys.exit(f"servometer report: {exc}")
    print(report.table())  # noqa: T201 - CLI output
    if args.output is not None:
        args.output.mkdir(parents=True, exist_ok=True)
        (args.output / f"{args.model}-variants.md").write_text(report.table() + "\n")
        (args.output / f"{args.model}-variants.json").write_text(report.model_dump_json(indent=1) + "\n")
        written = ["md", "json"]
        try:
            (args.output / f"{args.model}-variants.png").write_bytes(plot_png(report))
            written.append("png")
        except PlottingUnavailable as exc:
            _say(f"no plot: {exc}")
        _say(f"wrote {args.output}/{args.model}-variants.{{{','.join(written)}}}")


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)  # noqa: T201 - progress of a long command


def _serve(args: argparse.Namespace) -> None:
    settings = _settings(args, _SERVE_FLAGS)
    if settings.build_missing and not args.no_build:
        try:
            build_models(settings.models)
        except (ValueError, RuntimeError) as exc:
            sys.exit(f"servometer serve: building missing models failed: {exc}")
    for name in _SERVE_FLAGS:
        value = getattr(settings, name)
        os.environ[f"SERVOMETER_{name.upper()}"] = str(value.resolve() if isinstance(value, Path) else value)
    if settings.workers > 1 and settings.feedback_secret is None:
        # Each worker would draw its own and refuse the ids the others issued: about half of all feedback.
        os.environ["SERVOMETER_FEEDBACK_SECRET"] = secrets.token_urlsafe(32)
    with _metrics_directory(settings.workers):
        _run(settings)


@contextlib.contextmanager
def _metrics_directory(workers: int) -> Iterator[None]:
    """With several workers, prometheus_client keeps each worker's values in files of one shared, fresh directory
    (set before the workers start, so they pick file-backed values at import), removed when the server stops."""
    if workers == 1:
        yield
        return
    directory = tempfile.mkdtemp(prefix="servometer-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    # Beside the metric files (MultiProcessCollector reads only *.db): each worker's readiness (app/workers.py).
    os.environ["SERVOMETER_WORKER_DIR"] = os.path.join(directory, "ready")
    try:
        yield
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _run(settings: Settings) -> None:
    config = uvicorn.Config(
        "app.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        log_config=log_config(settings.log_level),
        access_log=settings.access_log,
        # Per-request work nobody asked for: X-Forwarded-* rewriting and Date / Server headers.
        proxy_headers=False,
        server_header=False,
        date_header=False,
        # The batchers answer everything admitted within drain_timeout_s of SIGTERM (503 for what they could not
        # run); uvicorn waits a little longer for those answers to be written before it cuts connections.
        timeout_graceful_shutdown=math.ceil(settings.drain_timeout_s) + 2,
        # Header and connection limits (app/api/connections.py); bodies are bounded where they are read.
        http=GuardedHttpProtocol,
        timeout_keep_alive=settings.keep_alive_timeout_s,
    )
    if settings.workers > 1:
        uvicorn.run(config.app, **{k: getattr(config, k) for k in _RUN_OPTIONS})
        return
    DrainingServer(config, settings.drain_timeout_s).run()


# uvicorn.run's own options for the multi-worker path, whose supervisor process forwards signals to the workers.
_RUN_OPTIONS = (
    "factory", "host", "port", "workers", "log_level", "log_config", "access_log", "proxy_headers",
    "server_header", "date_header", "timeout_graceful_shutdown", "http", "timeout_keep_alive",
)  # fmt: skip


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging set-up, extended to the ``app`` loggers (model loading, failures), each line naming the
    client's X-Request-Id when it is about one request."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["loggers"]["app"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    config["filters"] = {"request_id": {"()": "app.telemetry.request_ids.RequestIdFilter"}}
    for handler in ("default", "access"):
        config["handlers"][handler]["filters"] = ["request_id"]
    config["formatters"]["default"]["fmt"] = "%(levelprefix)s%(request)s %(message)s"
    config["formatters"]["access"]["fmt"] = (
        '%(levelprefix)s%(request)s %(client_addr)s - "%(request_line)s" %(status_code)s'
    )
    return config
