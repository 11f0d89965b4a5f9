"""What one running app holds, built by ``create_app`` and handed to routes (HTTP and gRPC alike)."""

from dataclasses import dataclass

from app.config import Settings
from app.describe import describe
from app.live.pages import LivePage
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
    live: LivePage | None = None
    """The live page; None when it is off (``ui``)."""

    async def load_model(self, name: str) -> None:
        """Load or reload a model from its repository folder, and tell the metrics what it is."""
        entry = await self.service.load_model(name, self.settings.drain_timeout_s)
        cache = self.service.cache
        describe([entry], self.metrics, cache.metrics if cache else None, self.settings)

    async def unload_model(self, name: str) -> None:
        await self.service.unload_model(name, self.settings.drain_timeout_s)
