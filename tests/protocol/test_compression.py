import gzip
import zlib

import pytest

from app.errors import InvalidRequest, PayloadTooLarge, UnsupportedEncoding
from app.protocol.compression import choose_encoding, compress, decompress


@pytest.mark.parametrize(
    ("encoding", "packed"), [("gzip", gzip.compress(b"x" * 100)), ("deflate", zlib.compress(b"x" * 100))]
)
def test_gzip_and_deflate_bodies_inflate(encoding, packed):
    assert decompress(packed, encoding, limit=1000) == b"x" * 100


def test_a_body_that_inflates_past_the_limit_is_refused_without_inflating_it_all():
    bomb = gzip.compress(b"\0" * 50_000_000)
    with pytest.raises(PayloadTooLarge):
        decompress(bomb, "gzip", limit=1_000_000)


def test_unknown_encoding_is_unsupported_and_corrupt_data_is_a_bad_request():
    with pytest.raises(UnsupportedEncoding, match="'br'"):
        decompress(b"...", "br", limit=10)
    with pytest.raises(InvalidRequest, match="not valid gzip"):
        decompress(b"not gzip at all", "gzip", limit=100)


@pytest.mark.parametrize(
    ("header", "chosen"),
    [(None, None), ("gzip", "gzip"), ("deflate", "deflate"), ("br, deflate;q=0.5", "deflate"), ("gzip;q=0", None)],
)
def test_response_encoding_follows_accept_encoding(header, chosen):
    assert choose_encoding(header) == chosen


def test_compressed_responses_round_trip():
    assert gzip.decompress(compress(b"abc" * 10, "gzip")) == b"abc" * 10
    assert zlib.decompress(compress(b"abc" * 10, "deflate")) == b"abc" * 10
