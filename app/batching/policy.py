"""A request's scheduling parameters: ``priority`` and ``timeout`` (microseconds, as tritonclient sends it)."""

from app.errors import InvalidRequest
from app.protocol.schemas import ParameterValue
from app.schema.manifest import BatchingSpec


def priority_level(spec: BatchingSpec, parameters: dict[str, ParameterValue]) -> int:
    """The queue level, 1 highest; the request's ``priority`` 0 or absent means the model's default level."""
    value = parameters.get("priority", 0)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= spec.priority_levels:
        raise InvalidRequest(f"parameter 'priority' must be an integer from 0 to {spec.priority_levels}, got {value!r}")
    return value or spec.default_level


def queue_timeout(spec: BatchingSpec, parameters: dict[str, ParameterValue]) -> float | None:
    """Seconds the request may wait in the queue; None waits as long as it takes. Set by the client's ``timeout``
    when it sends one (see :func:`client_owns_timeout`), else by the model's ``default_timeout_ms``."""
    value = parameters.get("timeout")
    if value is None:
        return spec.default_timeout_ms / 1000 or None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidRequest(f"parameter 'timeout' must be a positive integer of microseconds, got {value!r}")
    return value / 1_000_000


def client_owns_timeout(
    spec: BatchingSpec, parameters: dict[str, ParameterValue], latency_objective_s: float | None
) -> bool:
    """Whether expiring at this request's ``timeout`` is the client's doing rather than the server's: it chose a
    timeout shorter than the server promises (the model's ``default_timeout_ms``, else its p99 latency objective).
    A timeout at or past that promise expiring means the server is slow, and counts against it."""
    if "timeout" not in parameters:
        return False
    promise = spec.default_timeout_ms / 1000 or latency_objective_s
    chosen = queue_timeout(spec, parameters)
    return promise is None or (chosen is not None and chosen < promise)
