"""Domain errors. Each carries the HTTP status it maps to and the outcome word metrics record.

Raised anywhere below the API layer; ``app.api.error_responses`` turns them into ``{"error": ...}`` bodies.
"""

from typing import ClassVar


class ServingError(Exception):
    """Base of every error a client may see; the message names what was wrong."""

    status: int = 500
    outcome: ClassVar[str] = "server_error"

    def __init__(self, message: str, headers: dict[str, str] | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        if status is not None:
            self.status = status


class InvalidRequest(ServingError):
    """Malformed or inconsistent request: wrong input name, datatype, shape or data length."""

    status = 400
    outcome = "client_error"


class NotFound(ServingError):
    """Unknown model, variant or route."""

    status = 404
    outcome = "client_error"


class PayloadTooLarge(ServingError):
    """The body (read or decompressed) is over the configured limit."""

    status = 413
    outcome = "client_error"


class RequestTimeout(ServingError):
    """The request's body did not arrive in time."""

    status = 408
    outcome = "client_error"


class UnsupportedEncoding(ServingError):
    """A Content-Encoding or Content-Type the gateway does not speak."""

    status = 415
    outcome = "client_error"


class Unavailable(ServingError):
    """The model or server cannot take the request now (loading, failed to load, shutting down)."""

    status = 503
    outcome = "rejected"


class Overloaded(ServingError):
    """The variant's queue is full: rejected at once (503 by default, 429 where the model asks for it)."""

    status = 503
    outcome = "rejected"


class QueueTimeout(ServingError):
    """The request waited in the queue past the model's ``default_timeout_ms`` and never reached the model."""

    status = 504
    outcome = "timeout"


class ClientTimeout(QueueTimeout):
    """As :class:`QueueTimeout`, past a ``timeout`` the client chose: counted apart, since a client asking for
    1 ms says nothing about the server's health and must not page anyone."""

    outcome = "client_timeout"


class ComputeTimeout(ServingError):
    """The model call ran past the model's compute_timeout_ms; the request is answered without waiting for it."""

    status = 504
    outcome = "timeout"


class ClientGone(ServingError):
    """The client disconnected before its request was computed; nobody reads this answer."""

    status = 499
    outcome = "client_error"


class ModelFailed(ServingError):
    """The model raised while computing a valid request."""

    status = 500
    outcome = "server_error"


class StepFailed(ServingError):
    """A processing step before or after the model failed on a request; the message names the step."""
