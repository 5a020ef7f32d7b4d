"""Response bodies are read with a bound on their decompressed size: http.request, data.sync,
data.process_batch and image.process against the local HTTP server, in this process.

A gzip bomb (32 MiB of zeros in ~32 KiB) must fail with an error naming the limit, and reading
it must never hold much more than the limit in memory (tracemalloc's peak says what was held).
"""

from __future__ import annotations

import gzip
import logging
import tracemalloc
import uuid
import zlib

import pytest

from taskhub.builtins.data import SyncData, fetch_page
from taskhub.builtins.http import HttpRequest, http_request
from taskhub.builtins.images import download
from taskhub.errors import PermanentError

LIMIT = 1024 * 1024
BOMB = gzip.compress(b"\0" * (32 * 1024 * 1024), compresslevel=9)


class HandlerContext:
    def __init__(self) -> None:
        self.task_id = str(uuid.uuid4())
        self.logger = logging.getLogger("tests.body_limits")


@pytest.fixture
def low_limit(settings):
    settings.TASKHUB = {**settings.TASKHUB, "HTTP_MAX_RESPONSE_BYTES": LIMIT}


def serve(web, body: bytes, ctype: str = "application/json", encoding: str = "") -> str:
    headers = {"Content-Encoding": encoding} if encoding else {}
    return web.add_file(f"body-{uuid.uuid4().hex}", body, ctype, headers)


def peak_while(call) -> tuple[BaseException | None, int]:
    """(what ``call`` raised, the most memory it held at once)."""
    tracemalloc.start()
    try:
        call()
    except Exception as exc:  # noqa: BLE001  (returned for the test to inspect)
        return exc, tracemalloc.get_traced_memory()[1]
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return None, peak


def raw_deflate(data: bytes) -> bytes:
    deflater = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return deflater.compress(data) + deflater.flush()


def http_get(url: str):
    return lambda: http_request(HttpRequest(url=url), HandlerContext())


def sync_page(url: str):
    return lambda: fetch_page(SyncData(url=url, handler="test.collect"), "")


@pytest.mark.parametrize("reader", [http_get, sync_page], ids=["http.request", "data.sync"])
def test_a_gzip_bomb_fails_naming_the_limit_without_being_inflated(low_limit, web, reader):
    url = serve(web, BOMB, encoding="gzip")

    raised, peak = peak_while(reader(url))

    assert isinstance(raised, PermanentError), raised
    assert f"over the HTTP_MAX_RESPONSE_BYTES limit of {LIMIT} bytes" in str(raised)
    assert peak < 4 * LIMIT, f"held {peak} bytes reading a body limited to {LIMIT}"


@pytest.mark.parametrize("reader", [http_get, sync_page], ids=["http.request", "data.sync"])
def test_a_plain_body_over_the_limit_fails_naming_the_limit(low_limit, web, reader):
    url = serve(web, b"[" + b" " * (3 * LIMIT) + b"]")

    raised, _ = peak_while(reader(url))

    assert isinstance(raised, PermanentError), raised
    assert "HTTP_MAX_RESPONSE_BYTES" in str(raised)


def test_the_other_downloads_count_the_decompressed_size_too(web):
    url = serve(web, BOMB, "image/png", encoding="gzip")

    raised, peak = peak_while(lambda: download(url, LIMIT))

    assert peak < 4 * LIMIT, f"held {peak} bytes reading a body limited to {LIMIT}"
    assert isinstance(raised, PermanentError) and "IMAGE_MAX_BYTES" in str(raised), raised


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),  # zlib-wrapped
        ("deflate", raw_deflate),  # bare, as some servers send it
        ("", lambda b: b),
    ],
)
def test_bodies_within_the_limit_are_decoded_as_before(low_limit, web, encoding, encode):
    items = [{"n": i, "label": "x" * 50} for i in range(5000)]  # ~300 KiB of JSON
    text = ('{"items": ' + str(items).replace("'", '"') + "}").encode()
    url = serve(web, encode(text), encoding=encoding)

    got, next_cursor, _ = fetch_page(SyncData(url=url, handler="test.collect"), "")
    result = http_request(HttpRequest(url=url), HandlerContext())

    assert got == items and next_cursor == ""
    assert result["status_code"] == 200 and result["body"] == text[:2048].decode()


def test_an_error_answer_reads_only_an_excerpt(low_limit, web):
    web.state.fail_first["/files/busy"] = 1
    url = f"{web.base}/files/busy"

    with pytest.raises(Exception, match="server answered 503: busy, try later"):
        http_request(HttpRequest(url=url), HandlerContext())
