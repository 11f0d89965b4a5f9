"""HTTP routes only: parse, call the service, map errors. The logic lives below."""

from fastapi import APIRouter

from app.api import embeddings, feedback, health, live_page, metrics_endpoint, models, repository, variants

router = APIRouter()
for module in (health, models, variants, feedback, repository, metrics_endpoint, embeddings, live_page):
    router.include_router(module.router)
