"""Who may call what, over HTTP and gRPC alike.

Deny by default: with ``api_keys`` set, every route needs a key, except the health probes (``/v2/health/live``,
``/v2/health/ready``: probes carry no secrets), the live page's own files (not its data) and the paths the
operator opens with ``public_paths`` (``/metrics`` and the API docs unless told otherwise). So a route added
later is covered without anyone remembering to.
The model repository (management) routes (``/v2/repository...``) exist only when ``management_api_key`` is set
and always need that key; feedback needs ``feedback_api_key`` when that is set (each guards its own routes only,
so setting one alone leaves the API open); everything else takes any of ``api_keys`` (or the management key).
Keys travel as ``Authorization: Bearer <key>`` (an HTTP header, or gRPC metadata) and are compared in constant
time. gRPC calls map to the same kinds of access: the repository RPCs are management, the health checks public.
"""

import hmac
import re
from collections.abc import Sequence
from enum import Enum

PROBES = ("/v2/health/live", "/v2/health/ready")
LIVE_PAGE = "/"
LIVE_PAGE_STATIC = "/ui/static/"
"""The live page and its script, style and chart library: no data in them, so a browser loads them without a key
(the page then asks for one and sends it with its data requests, which need it like any API route)."""
_FEEDBACK_PATH = re.compile(r"^/v2/models/[^/]+/feedback$")


def bearer_token(authorization: bytes) -> bytes | None:
    """The key in an ``Authorization`` value (``Bearer <key>``), or None for another scheme or an empty key."""
    scheme, _, token = authorization.partition(b" ")
    token = token.strip()
    return token if scheme.lower() == b"bearer" and token else None


class Access(Enum):
    PUBLIC = "public"
    API = "api"
    FEEDBACK = "feedback"
    MANAGEMENT = "management"


class KeyCheck:
    def __init__(
        self,
        api_keys: list[str],
        management_key: str | None,
        feedback_key: str | None = None,
        public_paths: Sequence[str] = (),
    ) -> None:
        self._api = [key.encode() for key in api_keys]
        self._management = management_key.encode() if management_key else None
        self._feedback = feedback_key.encode() if feedback_key else None
        self._keys = [*self._api, *([self._feedback] if self._feedback else [])]
        self._public = tuple(path.rstrip("/") for path in public_paths)

    @property
    def enabled(self) -> bool:
        return bool(self._api) or self._management is not None or self._feedback is not None

    def access_for(self, path: str) -> Access:
        if path.startswith("/v2/repository"):
            return Access.MANAGEMENT
        if path in PROBES or path == LIVE_PAGE or path.startswith(LIVE_PAGE_STATIC):
            return Access.PUBLIC
        if any(path == open_ or path.startswith(open_ + "/") for open_ in self._public):
            return Access.PUBLIC
        if _FEEDBACK_PATH.match(path):
            return Access.FEEDBACK
        return Access.API

    def refusal(self, access: Access, presented: bytes | None) -> tuple[int, str] | None:
        """``(status, message)`` (HTTP's statuses) when a call of ``access`` presenting the key ``presented`` may
        not proceed, else None."""
        if access is Access.PUBLIC:
            return None
        if access is Access.MANAGEMENT:
            if self._management is None:
                return 404, "the model management API is off (set SERVOMETER_MANAGEMENT_API_KEY to enable it)"
            return self._check(presented, [], "the management API needs its own key")
        if access is Access.FEEDBACK and self._feedback is not None:
            feedback_only = "feedback needs the feedback key (SERVOMETER_FEEDBACK_API_KEY)"
            return self._check(presented, [self._feedback], feedback_only)
        if not self._api:  # no API keys: the API is open (management and feedback keys guard only their routes)
            return None
        return self._check(presented, self._api, "it needs an API key")

    def _check(self, presented: bytes | None, accepted: list[bytes], needs: str) -> tuple[int, str] | None:
        """Whether ``presented`` is the management key or one of ``accepted``: 401 without a known key, 403
        with a key known for other routes."""
        if presented is None:
            return 401, "this route needs an API key: send 'Authorization: Bearer <key>'"
        # Every key is compared, so the time taken does not tell which key came close.
        management = self._management is not None and hmac.compare_digest(presented, self._management)
        matches = [hmac.compare_digest(presented, key) for key in accepted]
        if management or any(matches):
            return None
        known = [hmac.compare_digest(presented, key) for key in self._keys]
        if any(known):
            return 403, f"this key may not call this route: {needs}"
        return 401, "the API key is not valid"
