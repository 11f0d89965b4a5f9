"""What one running app holds, built by ``create_app`` and handed to routes."""

from dataclasses import dataclass

from app.config import Settings
from app.repository.registry import Registry
from app.service import InferenceService
from app.telemetry.gpu import GpuSampler
from app.telemetry.metrics import Metrics
from app.variants.latest_reports import VariantReports


@dataclass(frozen=True)
class AppContext:
    settings: Settings
    registry: Registry
    service: InferenceService
    metrics: Metrics
    gpus: GpuSampler
    reports: VariantReports
