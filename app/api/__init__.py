"""HTTP routes only: parse, call the service, map errors. The logic lives below."""

from fastapi import APIRouter

from app.api import health, metrics, models, repository, variants

router = APIRouter()
for module in (health, models, variants, repository, metrics):
    router.include_router(module.router)
