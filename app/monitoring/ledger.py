"""Feedback on earlier answers: each monitored response carries an id; ``POST /v2/models/{model}/feedback`` with
that id and the true label (or, for embedding models, whether the answer was relevant) feeds live accuracy and
macro-F1 over a sliding window, per variant.

The id carries what the feedback needs (model, variant, predicted class, expiry) and an HMAC over it, so
nothing is stored per answer: remembering a million answers for an hour would cost memory, and keeping them as
objects made the garbage collector stall every request (measured: p99 5 ms -> 50 ms on digits). Only ids that
received feedback are remembered (:mod:`app.monitoring.judged`), so each answer is judged once.
"""

import base64
import hashlib
import hmac
import itertools
import secrets
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from app.errors import InvalidRequest, NotFound
from app.evaluation.quality import macro_f1
from app.monitoring.judged import JudgedIds, MemoryJudged

_MAC_BYTES = 12


@dataclass(frozen=True)
class Answer:
    model: str
    variant: str
    predicted: int | None
    """The top-1 class for classifiers; None for embeddings (judged relevant or not)."""


class FeedbackLedger:
    def __init__(self, secret: bytes | None = None, judged: JudgedIds | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self.judged = judged or MemoryJudged()
        self._serials = itertools.count()
        # Processes sharing the secret (workers, replicas) count serials from 0 alike: the origin keeps their ids
        # apart when two answers of the same class expire in the same millisecond.
        self._origin = secrets.token_hex(4)
        self._windows: dict[tuple[str, str], deque[tuple[int, int]]] = {}

    def issue(self, model: str, variant: str, predicted: int | None, ttl_s: float) -> str:
        """The id of an answer, accepting feedback for ``ttl_s`` seconds."""
        expires_ms = int((time.time() + ttl_s) * 1000)
        # The serial makes ids unique: two answers of the same class in the same millisecond must differ.
        serial = next(self._serials)
        payload = (
            f"{model}\0{variant}\0{'' if predicted is None else predicted}\0{expires_ms}\0{self._origin}{serial}"
        ).encode()
        return _b64(payload) + "." + _b64(self._mac(payload))

    def issue_for(self, model: str, variant: str, classifier: bool, scored: np.ndarray, ttl_s: float) -> str:
        """One id per sample of an answer, comma-separated in the samples' order: feedback judges each on its own.
        A classifier's ids carry each sample's top-1 class from ``scored``."""
        samples = len(scored)
        if classifier:
            predictions: list[int | None] = [int(c) for c in scored.reshape(samples, -1).argmax(axis=1)]
        else:
            predictions = [None] * samples
        return ",".join(self.issue(model, variant, predicted, ttl_s) for predicted in predictions)

    async def record(
        self, model: str, response_id: str, label: int | None, relevant: bool | None, window: int
    ) -> Answer:
        """Score an earlier answer; raises a 4xx naming the problem for unknown, expired, judged or mismatched
        feedback."""
        answer, expires_ms = self._read(response_id)
        if expires_ms < time.time() * 1000:
            raise NotFound(f"the answer with id '{response_id}' no longer takes feedback: it expired")
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
        if not await self.judged.claim(response_id, expires_ms):
            raise NotFound(f"the answer with id '{response_id}' was already judged: one judgement per answer")
        self._windows.setdefault((model, answer.variant), deque(maxlen=window)).append(outcome)
        return answer

    def live(self, model: str, variant: str) -> tuple[int, float, float]:
        """``(feedback items, accuracy, macro-F1)`` over the variant's window."""
        window = self._windows.get((model, variant))
        if not window:
            return 0, float("nan"), float("nan")
        predicted, actual = (np.asarray(column) for column in zip(*window, strict=True))
        return len(window), float(np.mean(predicted == actual)), macro_f1(actual, predicted)

    def _mac(self, payload: bytes) -> bytes:
        return hmac.digest(self._secret, payload, hashlib.sha256)[:_MAC_BYTES]

    def _read(self, response_id: str) -> tuple[Answer, int]:
        unknown = NotFound(f"no answer with id '{response_id}' awaits feedback: the id is not one this server issued")
        encoded, _, mac = response_id.partition(".")
        try:
            payload, signature = _unb64(encoded), _unb64(mac)
        except ValueError:
            raise unknown from None
        # The decoder skips characters outside its alphabet, so 'id.' or 'id!' decode like 'id': only the exact
        # encoding is the answer's id, or one answer could be judged again and again under new spellings.
        if (
            not hmac.compare_digest(signature, self._mac(payload))
            or f"{_b64(payload)}.{_b64(signature)}" != response_id
        ):
            raise unknown
        model, variant, predicted, expires, _ = payload.decode().split("\0")
        return Answer(model, variant, int(predicted) if predicted else None), int(expires)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
