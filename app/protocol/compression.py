"""gzip / deflate bodies (``Content-Encoding`` / ``Accept-Encoding``), as tritonclient and perf_analyzer send them."""

import zlib

from app.errors import InvalidRequest, PayloadTooLarge, UnsupportedEncoding

# zlib's wbits: 16 + 15 reads a gzip wrapper, 15 the zlib wrapper HTTP calls "deflate".
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo a request's Content-Encoding, refusing to inflate past ``limit`` bytes (a zip bomb stops there)."""
    name = (encoding or "identity").strip().lower()
    if name == "identity":
        return body
    if name not in _WBITS:
        raise UnsupportedEncoding(f"Content-Encoding '{encoding}' is not supported; use gzip, deflate or identity")
    inflater = zlib.decompressobj(_WBITS[name])
    try:
        result = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidRequest(f"request body is not valid {name} data: {exc}") from None
    if len(result) > limit:
        raise PayloadTooLarge(f"request body inflates to more than the {limit}-byte limit")
    if not inflater.eof:
        raise InvalidRequest(f"request body is truncated {name} data")
    return result


def choose_encoding(accept_encoding: str | None) -> str | None:
    """The response encoding for an Accept-Encoding header: gzip or deflate when accepted, else none."""
    if not accept_encoding:
        return None
    accepted = set()
    for part in accept_encoding.split(","):
        token, *params = part.split(";")
        if _quality(params) > 0:
            accepted.add(token.strip().lower())
    return next((name for name in ("gzip", "deflate") if name in accepted), None)


def _quality(params: list[str]) -> float:
    for param in params:
        key, _, value = param.strip().partition("=")
        if key == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def compress(body: bytes, encoding: str) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, _WBITS[encoding])
    return compressor.compress(body) + compressor.flush()
