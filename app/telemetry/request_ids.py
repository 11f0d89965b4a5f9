"""The client's ``X-Request-Id``: echoed on the response and named in every log line about its request, so an
operator can find a user's complaint in the log.

The id lives in a context variable set where the request enters; log records made while it is set carry it
(:class:`RequestIdFilter`). Work done for several requests at once (a batch) names their ids itself.
"""

import logging
import re
from contextvars import ContextVar

HEADER = b"x-request-id"
MAX_LENGTH = 200
# Visible ASCII only: an id with a newline or other control characters could forge log lines.
_VALID = re.compile(rb"[\x21-\x7e]{1,%d}" % MAX_LENGTH)

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)


def request_id_of(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The raw ``X-Request-Id`` of an ASGI request, if any; raises ValueError when it is not a valid id."""
    for name, value in headers:
        if name == HEADER:
            if not _VALID.fullmatch(value):
                raise ValueError(
                    f"X-Request-Id must be 1 to {MAX_LENGTH} visible ASCII characters (no spaces or control "
                    f"characters), got {len(value)} bytes"
                )
            return value
    return None


class RequestIdFilter(logging.Filter):
    """Adds ``request`` to every record: `` [request <id>]`` while a request's id is set, else empty."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = REQUEST_ID.get()
        record.request = f" [request {request_id}]" if request_id else ""
        return True
