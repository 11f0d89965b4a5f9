"""``POST /v2/models/{model}/feedback``: the true label of an earlier answer (or, for embedding models, whether it
was relevant), by the ``response_id`` the answer carried; feeds live accuracy."""

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import ContextDep

router = APIRouter(tags=["feedback"])


class Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(min_length=1, max_length=512)]
    """The ``response_id`` of the answer (response header ``servometer-response-id``)."""
    label: Annotated[int, Field(ge=0)] | None = None
    """Classifiers: the true class."""
    relevant: bool | None = None
    """Embedding models: whether the answer served its purpose."""


class FeedbackRecorded(BaseModel):
    correct: bool


@router.post("/v2/models/{model}/feedback", response_model=FeedbackRecorded, summary="Feedback on an earlier answer")
async def feedback(context: ContextDep, model: str, body: Feedback) -> FeedbackRecorded:
    correct = await context.service.record_feedback(model, body.id, body.label, body.relevant)
    return FeedbackRecorded(correct=correct)
