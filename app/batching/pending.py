"""A request waiting in a batcher's queue."""

import asyncio
from dataclasses import dataclass, field

import numpy as np

Signature = tuple[tuple[str, str, tuple[int, ...]], ...]
"""Per input: name, dtype and the shape after the batch dimension. Only equal signatures share a model call."""


def signature_of(inputs: dict[str, np.ndarray]) -> Signature:
    return tuple((name, array.dtype.str, array.shape[1:]) for name, array in sorted(inputs.items()))


@dataclass(eq=False, slots=True)
class PendingRequest:
    inputs: dict[str, np.ndarray]
    outputs: tuple[str, ...]
    samples: int
    """Size of the batch dimension this request brings."""
    signature: Signature
    level: int
    """Priority level, 1 highest."""
    enqueued_at: float
    """``loop.time()`` when it was queued."""
    future: asyncio.Future[dict[str, np.ndarray]]
    queued: bool = True
    timer: asyncio.TimerHandle | None = field(default=None)
    request_id: str | None = None
    """The client's X-Request-Id, named when its batch fails."""
