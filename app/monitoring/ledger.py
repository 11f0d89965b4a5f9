"""Feedback on earlier answers: each monitored response carries an id; ``POST /v2/models/{model}/feedback`` with
that id and the true label (or, for embedding models, whether the answer was relevant) feeds live accuracy and
macro-F1 over a sliding window, per variant.

The id carries what the feedback needs (model, variant, predicted class, expiry) and an HMAC over it, so
nothing is stored per answer: remembering a million answers for an hour would cost memory, and keeping them as
objects made the garbage collector stall every request (measured: p99 5 ms -> 50 ms on digits). Only ids that
received feedback are remembered (:mod:`app.monitoring.judged`), so each answer is judged once.
"""

import base64
import binascii
import hashlib
import hmac
import itertools
import secrets
import struct
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
        # BLAKE2b takes keys of up to 64 bytes; the secret (any length) is hashed down to one.
        self._key = hashlib.blake2b(secret or secrets.token_bytes(32), digest_size=64).digest()
        self.judged = judged or MemoryJudged()
        # Processes sharing the secret (workers, replicas) each count from a random 62-bit start, so their ids stay
        # apart when two answers of the same class expire in the same millisecond.
        self._serials = itertools.count(secrets.randbits(62))
        self._prefixes: dict[tuple[str, str], bytes] = {}
        self._windows: dict[tuple[str, str], deque[tuple[int, int]]] = {}

    def issue(self, model: str, variant: str, predicted: int | None, ttl_s: float) -> str:
        """The id of an answer, accepting feedback for ``ttl_s`` seconds."""
        prefix = self._prefixes.get((model, variant))
        if prefix is None:
            prefix = self._prefixes[(model, variant)] = f"{model}\0{variant}\0".encode()
        # The serial makes ids unique: two answers of the same class in the same millisecond must differ.
        expires_ms = int((time.time() + ttl_s) * 1000)
        payload = prefix + _FIGURES.pack(next(self._serials), expires_ms, -1 if predicted is None else predicted)
        return _b64(payload + self._mac(payload))

    def issue_for(self, model: str, variant: str, classifier: bool, scored: np.ndarray, ttl_s: float) -> str:
        """One id per sample of an answer, comma-separated in the samples' order: feedback judges each on its own.
        A classifier's ids carry each sample's top-1 class from ``scored``."""
        samples = len(scored)
        if samples == 1:  # most requests: no per-sample list
            return self.issue(model, variant, int(scored.argmax()) if classifier else None, ttl_s)
        if classifier:
            predictions: list[int | None] = scored.reshape(samples, -1).argmax(axis=1).tolist()
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
        # Keyed BLAKE2b is a MAC in its own right (RFC 7693), at a third of HMAC-SHA256's cost per id.
        return hashlib.blake2b(payload, key=self._key, digest_size=_MAC_BYTES).digest()

    def _read(self, response_id: str) -> tuple[Answer, int]:
        unknown = NotFound(f"no answer with id '{response_id}' awaits feedback: the id is not one this server issued")
        try:
            raw = _unb64(response_id)
        except ValueError:
            raise unknown from None
        payload, signature = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        # The decoder skips characters outside its alphabet, so 'id.' or 'id!' decode like 'id': only the exact
        # encoding is the answer's id, or one answer could be judged again and again under new spellings.
        if (
            len(payload) < _FIGURES.size
            or not hmac.compare_digest(signature, self._mac(payload))
            or _b64(raw) != response_id
        ):
            raise unknown
        names, figures = payload[: -_FIGURES.size], payload[-_FIGURES.size :]
        model, variant, _ = names.decode().split("\0")
        _, expires_ms, predicted = _FIGURES.unpack(figures)
        return Answer(model, variant, None if predicted < 0 else predicted), expires_ms


_FIGURES = struct.Struct("<QQi")
"""Serial, expiry in milliseconds since the epoch, predicted class (-1: none); after ``model\\0variant\\0``."""
_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
