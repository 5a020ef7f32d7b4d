"""Reading response bodies with a bound on what they decompress to.

``response.read()`` and ``iter_bytes()`` inflate each network chunk whole: a 64 KiB chunk of a
gzip bomb is 64 MiB of memory before any counting can happen, and the whole body of a large
(or endless) response is held at once. Here the raw stream is inflated piece by piece, no call
making more than :data:`PIECE` bytes, and reading stops as soon as the decompressed size passes
the limit. The codings undone are the ones httpx asks for (``gzip``, ``deflate``); like httpx,
an unknown coding is passed through as is.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

import httpx

from ..errors import PermanentError

#: most bytes one inflate call may produce
PIECE = 64 * 1024
_GZIP = zlib.MAX_WBITS | 16


class BodyTooLarge(PermanentError):
    """The body (decompressed) is over the configured limit; retrying would read it again."""


class _Inflater:
    """Undoes one gzip or deflate coding, in pieces of at most PIECE bytes."""

    def __init__(self, coding: str):
        self.coding = coding
        self._zlib = zlib.decompressobj(_GZIP if coding != "deflate" else zlib.MAX_WBITS)
        self._started = False

    def _decompress(self, data: bytes) -> bytes:
        try:
            out = self._zlib.decompress(data, PIECE)
        except zlib.error:
            if self.coding != "deflate" or self._started:
                raise
            # Servers send "deflate" both zlib-wrapped and raw (as httpx allows): try raw.
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._zlib.decompress(data, PIECE)
        self._started = True
        return out

    def undo(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            data = chunk
            while data:
                out = self._decompress(data)
                data = self._zlib.unconsumed_tail
                if out:
                    yield out
        rest = self._zlib.flush()
        if rest:
            yield rest


def _codings(response: httpx.Response) -> list[str]:
    """Content codings to undo, outermost (last applied) first."""
    values = response.headers.get_list("content-encoding", split_commas=True)
    codings = [v.strip().lower() for v in values]
    known = ["gzip" if c == "x-gzip" else c for c in codings if c in ("gzip", "x-gzip", "deflate")]
    return list(reversed(known))


def decoded_pieces(response: httpx.Response) -> Iterator[bytes]:
    """The body of a streamed response, decompressed, in pieces of at most PIECE bytes."""
    pieces: Iterator[bytes] = response.iter_raw(PIECE)
    for coding in _codings(response):
        pieces = _Inflater(coding).undo(pieces)
    try:
        yield from pieces
    except zlib.error as exc:
        raise httpx.DecodingError(
            f"cannot decode the body: {exc}", request=response.request
        ) from exc


def read_body(response: httpx.Response, limit: int, *, limit_name: str) -> bytes:
    """The whole body, decompressed; BodyTooLarge (naming ``limit_name``) once it passes
    ``limit`` bytes — counted as they are inflated, so a bomb never fills memory."""
    body = bytearray()
    for piece in decoded_pieces(response):
        body += piece
        if len(body) > limit:
            raise BodyTooLarge(
                f"the response body from {response.request.url} is over the {limit_name} "
                f"limit of {limit} bytes (decompressed)"
            )
    return bytes(body)


def read_excerpt(response: httpx.Response, size: int) -> bytes:
    """At most the first ``size`` bytes of the body, decompressed; the rest is never read."""
    body = bytearray()
    try:
        for piece in decoded_pieces(response):
            body += piece
            if len(body) >= size:
                break
    except httpx.DecodingError:
        pass  # an excerpt for an error message: what could be decoded is enough
    return bytes(body[:size])


def text_of(response: httpx.Response, body: bytes) -> str:
    return body.decode(response.encoding or "utf-8", errors="replace")
