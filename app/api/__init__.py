"""HTTP routes only: parse, call the service, map errors. The logic lives below."""

from fastapi import APIRouter

from app.api import health, infer, metrics, models

router = APIRouter()
for module in (health, models, infer, metrics):
    router.include_router(module.router)
