"""The registry of models and their variants: scanned from the repository, loaded, looked up per request.

A model whose manifest is invalid, or a variant whose file fails to load, is recorded as unavailable with
its reason; every other model still serves.
"""

import hashlib
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from app.errors import InvalidRequest, NotFound, Unavailable
from app.processing.pipeline import Pipeline
from app.repository.build_record import incomplete_build
from app.runtimes.base import Runtime, RuntimeLoadError, RuntimeOptions, within_allowance
from app.runtimes.cpus import read_allowance
from app.runtimes.loader import load_variant_runtime
from app.schema.manifest import (
    MANIFEST_FILE,
    NAME_PATTERN,
    ManifestError,
    ModelManifest,
    VariantSpec,
    load_manifest,
)

log = logging.getLogger(__name__)


class VariantState(StrEnum):
    LOADING = "LOADING"
    LOADED = "LOADED"
    """The runtime is loaded; the service has not yet started its batcher and run its warm-up call."""
    READY = "READY"
    """Serving: an inference on it would be answered."""
    UNAVAILABLE = "UNAVAILABLE"


@dataclass
class Variant:
    manifest: ModelManifest
    spec: VariantSpec
    version: int
    path: Path
    state: VariantState = VariantState.LOADING
    reason: str = ""
    runtime: Runtime | None = None
    pipeline: Pipeline | None = None
    """The runtime with the model's processing steps: what the batcher runs (set with ``runtime``)."""
    digest: str = ""
    load_seconds: float = 0.0
    model_name: str = field(init=False)
    """The manifest's name, kept as a plain attribute: the request path reads it several times per request."""
    key: tuple[str, str] = field(init=False)
    """``(model_name, name)``: how the service finds what serves the variant."""
    cached: bool = field(init=False)
    """Whether its answers go through the result cache. An answer that depends on its batch companions never
    does: computed alone it is right for its client only, and the cache would serve it to others (and, through
    Redis, to every replica)."""

    def __post_init__(self) -> None:
        self.model_name = self.manifest.name
        self.key = (self.manifest.name, self.spec.name)
        self.cached = self.manifest.cache.enabled and not self.spec.batch_dependent

    @property
    def not_ready_reason(self) -> str:
        """Why it does not serve; empty when it does."""
        if self.state is VariantState.READY:
            return ""
        return self.reason or {VariantState.LOADED: "warming up"}.get(self.state, "still loading")

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass
class ModelEntry:
    name: str
    manifest: ModelManifest | None
    error: str = ""
    variants: dict[str, Variant] = field(default_factory=dict)

    def resolve(self, version: str | None) -> Variant:
        """The variant addressed by a version number or variant name; the default one for None."""
        if self.manifest is None:
            raise Unavailable(f"model '{self.name}' is unavailable: {self.error}")
        if version is None or version == "":
            return self.variants[self.manifest.default]
        for variant in self.variants.values():
            if version in (variant.name, str(variant.version)):
                return variant
        known = ", ".join(f"{v.version} ({v.name})" for v in self.variants.values())
        raise NotFound(f"model '{self.name}' has no version or variant '{version}'; it has {known}")


class Registry:
    def __init__(self, root: Path, options: RuntimeOptions, allow_model_code: bool = False) -> None:
        self.root = root
        self.options = options
        self.allow_model_code = allow_model_code
        """Whether ``python`` processing steps may run the model folders' own process.py."""
        self._models: dict[str, ModelEntry] = {}
        self._required: set[str] = set()
        """Models marked required, remembered after an unload: without them the server is not ready."""

    def scan(self) -> None:
        """Read every ``*/model.yaml`` under the root. Cheap: loads no model file."""
        if not self.root.is_dir():
            raise FileNotFoundError(f"model repository {self.root} is not a directory")
        for folder in sorted(path.parent for path in self.root.glob(f"*/{MANIFEST_FILE}")):
            if not _inside(folder, self.root):
                log.error("model folder '%s' is skipped: it links out of the model repository", folder.name)
                continue
            self.install(self._read(folder))  # a folder whose name is no model name is listed with that error

    def model_folder(self, name: str) -> Path | None:
        """The folder of model ``name`` when it is one the server may load, else None: a valid name, directly
        inside the repository once every link is resolved, holding a model.yaml. The start-up scan and the load
        API both ask here, so a link out of the repository is refused by either."""
        if "\0" in name:
            raise InvalidRequest("the model name contains a null byte")
        if not NAME_PATTERN.fullmatch(name):
            return None
        folder = self.root / name
        if not _inside(folder, self.root) or not (folder / MANIFEST_FILE).is_file():
            return None
        return folder

    def reload(self, name: str) -> tuple[ModelEntry, ModelEntry | None]:
        """Read one model's folder again and load its variants: ``(new entry, the entry it replaces)``. Blocking.

        ``name`` is only ever a folder directly inside the repository: no path, no link out of it, no URL.
        """
        folder = self.model_folder(name)
        if folder is None:
            raise NotFound(f"the model repository has no model folder '{name}'")
        entry = self._read(folder)
        for variant in entry.variants.values():
            self._load(variant)
        return entry, self._models.get(name)

    def install(self, entry: ModelEntry) -> None:
        self._models[entry.name] = entry
        if entry.manifest is not None and entry.manifest.required:
            self._required.add(entry.name)
        elif entry.manifest is not None:
            self._required.discard(entry.name)

    def remove(self, name: str) -> ModelEntry:
        """Forget a model (its runtimes are closed by :meth:`close_entry` once nothing uses them)."""
        return self._models.pop(self.get(name).name)

    @staticmethod
    def close_entry(entry: ModelEntry) -> None:
        for variant in entry.variants.values():
            if variant.runtime is not None:
                variant.runtime.close()
                variant.runtime = variant.pipeline = None
            variant.state, variant.reason = VariantState.UNAVAILABLE, "unloaded"

    def load_all(self) -> None:
        """Load every variant's runtime. Blocking: run it off the event loop.

        Thread counts left unset are shared out first among every instance of every variant about to load, so
        that all of them computing at once stay within the CPUs the process may use; models loaded later through
        the management API get the same count."""
        loading = [variant for variant in self.variants() if variant.state is not VariantState.UNAVAILABLE]
        instances = sum(variant.manifest.batching.instances for variant in loading)
        allowance = read_allowance()
        self.options = within_allowance(self.options, instances, allowance)
        log.info(
            "CPU allowance: %d CPUs (affinity %d, cgroup quota %s) for %d worker(s) and %d model instance(s): "
            "%d onnxruntime intra-op, %d inter-op and %d torch thread(s) per instance",
            allowance.cpus,
            allowance.affinity,
            "none" if allowance.quota is None else f"{allowance.quota:g}",
            self.options.workers,
            instances,
            self.options.onnx_intra_op_threads,
            self.options.onnx_inter_op_threads,
            self.options.torch_threads,
        )
        for variant in loading:
            self._load(variant)

    def _load(self, variant: Variant) -> None:
        if variant.state is VariantState.UNAVAILABLE:  # known before loading (an incomplete build)
            return
        started = time.perf_counter()
        try:
            runtime = load_variant_runtime(variant.spec.runtime, variant.path, self.options, variant.manifest)
            try:
                check_signature(variant.manifest, runtime)
                manifest = variant.manifest
                folder = variant.path.parent
                pipeline = Pipeline(runtime, manifest.steps, folder, manifest.batching, self.allow_model_code)
            except RuntimeLoadError:
                runtime.close()
                raise
            variant.digest = file_digest(variant.path)
            if variant.manifest.steps:  # the steps decide answers too: cached ones must follow them
                variant.digest = hashlib.sha256((variant.digest + pipeline.fingerprint).encode()).hexdigest()
        except RuntimeLoadError as exc:
            variant.state, variant.reason = VariantState.UNAVAILABLE, self.public(str(exc))
            log.error("model '%s' variant '%s' is unavailable: %s", variant.model_name, variant.name, exc)
            return
        variant.runtime, variant.pipeline, variant.state = runtime, pipeline, VariantState.LOADED
        variant.load_seconds = time.perf_counter() - started
        log.info(
            "loaded model '%s' variant '%s' (%s on %s) in %.2fs",
            variant.model_name,
            variant.name,
            runtime.platform,
            runtime.device,
            variant.load_seconds,
        )

    def models(self) -> list[ModelEntry]:
        return list(self._models.values())

    def variants(self) -> Iterator[Variant]:
        for entry in self._models.values():
            yield from entry.variants.values()

    def get(self, model: str) -> ModelEntry:
        entry = self._models.get(model)
        if entry is None:
            raise NotFound(f"unknown model '{model}'; this server has {', '.join(self._models) or 'no models'}")
        return entry

    def resolve(self, model: str, version: str | None) -> Variant:
        return self.get(model).resolve(version)

    def required_failures(self) -> list[str]:
        """Required models whose default variant does not serve, with the reason; empty when all do."""
        reasons = []
        for name in sorted(self._required):
            entry = self._models.get(name)
            if entry is None:
                reasons.append(f"required model '{name}' is not loaded (it was unloaded)")
            elif entry.manifest is None:
                reasons.append(f"required model '{name}': {entry.error}")
            else:
                variant = entry.variants[entry.manifest.default]
                if variant.state is not VariantState.READY:
                    reasons.append(f"required model '{name}' variant '{variant.name}': {variant.not_ready_reason}")
        return reasons

    def close(self) -> None:
        for entry in self._models.values():
            self.close_entry(entry)

    def public(self, text: str) -> str:
        """``text`` for clients (readiness, metadata, 503s), who have no business learning the server's file
        layout: files in the repository named from it down, any other absolute path (a runtime's own source
        files, in its messages) left out."""
        roots = {str(self.root.resolve()), str(self.root.absolute()), str(self.root)}
        for root in sorted(roots, key=len, reverse=True):
            text = text.replace(root + "/", "")
        return _ABSOLUTE_PATH.sub("…", text)

    def _read(self, folder: Path) -> ModelEntry:
        try:
            manifest = load_manifest(folder)
        except ManifestError as exc:
            log.error("model '%s' is unavailable: %s", folder.name, exc)
            return ModelEntry(folder.name, None, self.public(str(exc)))
        versions = manifest.versions()
        entry = ModelEntry(manifest.name, manifest)
        for spec in manifest.variants:
            entry.variants[spec.name] = Variant(manifest, spec, versions[spec.name], folder / spec.file)
        links = _links_out(folder, [folder / spec.file for spec in manifest.variants])
        if links:  # the model's files are read from the folder only: its data and reference statistics too
            reason = f"its folder holds links out of it ({', '.join(links)}): not served"
            log.error("model '%s' is unavailable: %s", folder.name, reason)
            for variant in entry.variants.values():
                variant.state, variant.reason = VariantState.UNAVAILABLE, reason
            return entry
        unbuilt = incomplete_build(folder)
        if unbuilt:  # a failed or interrupted build: whatever files it left are not served
            reason = self.public(f"{unbuilt}; run `servometer models build {folder.name}`")
            log.error("model '%s' is unavailable: %s", folder.name, reason)
            for variant in entry.variants.values():
                variant.state, variant.reason = VariantState.UNAVAILABLE, reason
        return entry


_ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])/(?:[\w.@+-]+/)+[\w.@+-]*")


def _inside(folder: Path, root: Path) -> bool:
    """Whether ``folder`` is directly inside ``root`` once every link is resolved."""
    return folder.resolve().parent == root.resolve()


def _links_out(folder: Path, variant_files: list[Path]) -> list[str]:
    """Names of the folder's files (its own, and the variants' wherever they lie in it) that resolve to
    somewhere outside it."""
    inside = folder.resolve()
    candidates = {*folder.rglob("*"), *variant_files}
    return sorted(str(p.relative_to(folder)) for p in candidates if not p.resolve().is_relative_to(inside))


def check_signature(manifest: ModelManifest, runtime: Runtime) -> None:
    """The tensors the manifest says the file has (what clients send and get, as the processing steps turn them)
    must exist in the file with the same datatype and compatible shape."""
    returned = {info.name for info in runtime.outputs()}
    unread = [name for name in manifest.step_reads if name not in returned]
    if unread:
        raise RuntimeLoadError(f"the steps after the model read outputs {unread} the file does not have")
    if manifest.steps:  # the file takes some of what the steps leave (a check step reads what the model reads too)
        offered = {spec.name: spec for spec in manifest.model_inputs}
        missing = sorted(info.name for info in runtime.inputs() if info.name not in offered)
        if missing:
            raise RuntimeLoadError(f"the file needs inputs {missing} that model.yaml's inputs and steps do not make")
        taken = [offered[info.name] for info in runtime.inputs()]
    else:
        taken = manifest.model_inputs
    for kind, declared, actual in (
        ("input", taken, runtime.inputs()),
        ("output", manifest.model_outputs, runtime.outputs()),
    ):
        found = {info.name: info for info in actual}
        for spec in declared:
            info = found.get(spec.name)
            if info is None:
                raise RuntimeLoadError(f"the file has no {kind} '{spec.name}' (it has {sorted(found)})")
            if info.datatype != spec.datatype:
                raise RuntimeLoadError(
                    f"{kind} '{spec.name}' is {info.datatype} in the file, {spec.datatype} in model.yaml"
                )
            if len(info.shape) != len(spec.shape) or any(
                have is not None and want != -1 and have != want
                for have, want in zip(info.shape, spec.shape, strict=True)
            ):
                raise RuntimeLoadError(
                    f"{kind} '{spec.name}' has shape {list(info.shape)} in the file, {spec.shape} in model.yaml"
                )
        if kind == "input" and len(found) != len(declared):
            extra = sorted(set(found) - {spec.name for spec in declared})
            raise RuntimeLoadError(f"the file needs inputs {extra} that model.yaml does not declare")


def file_digest(path: Path) -> str:
    """sha256 of the model file and of ONNX external data beside it: a rebuilt model gets a new digest."""
    digest = hashlib.sha256()
    for part in (path, path.with_name(path.name + ".data")):
        if part.is_file():
            with part.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
    return digest.hexdigest()
