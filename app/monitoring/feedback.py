"""Feedback on earlier answers: each monitored response carries an id; ``POST /v2/models/{model}/feedback`` with
that id and the true label (or, for embeddings, whether the answer was relevant) feeds live accuracy and macro-F1
over a sliding window, per variant.

Ids are remembered for ``feedback_ttl_s`` and at most ``MAX_OPEN`` at a time (the oldest forgotten first), so
remembering them costs bounded memory whatever the traffic.
"""

import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

import numpy as np

from app.errors import InvalidRequest, NotFound
from app.variants.quality import macro_f1

MAX_OPEN = 100_000


@dataclass(frozen=True)
class Answer:
    model: str
    variant: str
    predicted: int | None
    """The top-1 class for classifiers; None for embeddings (judged relevant or not)."""
    expires: float


class FeedbackLedger:
    def __init__(self, max_open: int = MAX_OPEN) -> None:
        self._open: OrderedDict[str, Answer] = OrderedDict()
        self._max_open = max_open
        self._windows: dict[tuple[str, str], deque[tuple[int, int]]] = {}

    def issue(self, model: str, variant: str, predicted: int | None, ttl_s: float) -> str:
        """A new response id that may receive feedback for ``ttl_s`` seconds."""
        response_id = secrets.token_hex(12)
        self._open[response_id] = Answer(model, variant, predicted, time.monotonic() + ttl_s)
        while len(self._open) > self._max_open:
            self._open.popitem(last=False)
        return response_id

    def record(self, model: str, response_id: str, label: int | None, relevant: bool | None, window: int) -> Answer:
        """Score an earlier answer; raises a 4xx naming the problem for unknown, expired or mismatched feedback."""
        answer = self._open.get(response_id)
        if answer is None or answer.expires < time.monotonic():
            self._open.pop(response_id, None)
            raise NotFound(f"no answer with id '{response_id}' awaits feedback: unknown, already judged, or expired")
        if answer.model != model:
            raise InvalidRequest(f"response '{response_id}' was answered by model '{answer.model}', not '{model}'")
        if answer.predicted is not None:
            if label is None:
                raise InvalidRequest("feedback for a classifier needs 'label': the true class (an integer)")
            outcome = (answer.predicted, label)
        else:
            if relevant is None:
                raise InvalidRequest("feedback for an embedding model needs 'relevant': true or false")
            outcome = (1, 1 if relevant else 0)
        del self._open[response_id]  # one judgement per answer
        self._windows.setdefault((model, answer.variant), deque(maxlen=window)).append(outcome)
        return answer

    def live(self, model: str, variant: str) -> tuple[int, float, float]:
        """``(feedback items, accuracy, macro-F1)`` over the variant's window."""
        window = self._windows.get((model, variant))
        if not window:
            return 0, float("nan"), float("nan")
        predicted, actual = (np.asarray(column) for column in zip(*window, strict=True))
        return len(window), float(np.mean(predicted == actual)), macro_f1(actual, predicted)

    def judged(self) -> list[tuple[str, str]]:
        return list(self._windows)
