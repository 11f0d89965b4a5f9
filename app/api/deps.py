"""Typed access to what the app holds, for route signatures."""

from typing import Annotated

from fastapi import Depends, Request

from app.config import Settings
from app.repository.registry import Registry
from app.service import InferenceService
from app.telemetry.metrics import Metrics


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _registry(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    return registry


def _service(request: Request) -> InferenceService:
    service: InferenceService = request.app.state.service
    return service


def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


SettingsDep = Annotated[Settings, Depends(_settings)]
RegistryDep = Annotated[Registry, Depends(_registry)]
ServiceDep = Annotated[InferenceService, Depends(_service)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
