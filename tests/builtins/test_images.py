"""image.process end to end: real workers downloading from a real HTTP server."""

import io
import struct
import zlib

import pytest
from django.core.files.storage import default_storage
from PIL import Image

from taskhub import InvalidTaskRequest, schedule
from tests.support import wait_status

pytestmark = [pytest.mark.e2e]


def png_bytes(width: int, height: int, color=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels in a few dozen bytes (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def test_a_png_is_resized_cropped_and_stored_as_webp_of_the_requested_size(e2e, web):
    url = web.add_file("photo.png", png_bytes(1200, 800), "image/png")

    task = schedule(
        "image.process",
        {
            "url": url,
            "outputFormat": "webp",
            "quality": 80,
            "transformations": [
                {"type": "resize", "options": {"width": 600}},
                {"type": "crop", "options": {"left": 100, "top": 50, "width": 400, "height": 300}},
                {"type": "grayscale"},
            ],
        },
    )

    done = wait_status(task.id, "completed", timeout=60)

    result = done.result
    assert (result["width"], result["height"], result["format"]) == (400, 300, "webp")
    assert result["source"] == {
        "width": 1200,
        "height": 800,
        "format": "PNG",
        "size": result["source"]["size"],
    }
    with default_storage.open(result["path"], "rb") as stored:
        data = stored.read()
    assert len(data) == result["size"]
    image = Image.open(io.BytesIO(data))
    assert image.format == "WEBP" and image.size == (400, 300)
    assert result["url"].endswith(result["path"])
    assert done.progress == 100


def test_a_thumbnail_keeps_the_aspect_ratio(e2e, web):
    url = web.add_file("wide.png", png_bytes(1200, 800), "image/png")

    task = schedule(
        "image.process",
        {
            "url": url,
            "outputFormat": "png",
            "transformations": [
                {"type": "thumbnail", "options": {"width": 400, "height": 400}},
                {"type": "rotate", "options": {"degrees": 90}},
            ],
        },
    )

    done = wait_status(task.id, "completed", timeout=60)

    assert (done.result["width"], done.result["height"]) == (267, 400)


def test_a_server_error_is_retried_and_the_image_is_processed_on_the_next_attempt(e2e, web):
    url = web.add_file("flaky.png", png_bytes(100, 100), "image/png")
    web.state.fail_first["/files/flaky.png"] = 1

    task = schedule("image.process", {"url": url, "transformations": []})

    done = wait_status(task.id, "completed", timeout=60)

    assert done.attempt == 2 and done.result["width"] == 100


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("notes.txt", b"just some text, not pixels", "not an image"),
        ("cut.png", png_bytes(300, 300, (1, 2, 3))[:-200], "truncated or corrupt"),
        ("bomb.png", png_header_only(60_000, 60_000), "decompression bomb"),
    ],
)
def test_bad_files_fail_at_once_with_a_clear_error(e2e, web, name, body, message):
    url = web.add_file(name, body)

    task = schedule("image.process", {"url": url, "transformations": []})

    failed = wait_status(task.id, "failed", timeout=60)

    assert failed.attempt == 1
    assert message in failed.error


def test_a_missing_file_fails_without_retrying(e2e, web):
    task = schedule("image.process", {"url": f"{web.base}/files/absent.png"})

    failed = wait_status(task.id, "failed", timeout=60)

    assert failed.attempt == 1 and "404" in failed.error


@pytest.mark.parametrize(
    "payload",
    [
        {"url": "http://x.test/a.png", "transformations": [{"type": "blur"}]},
        {"url": "http://x.test/a.png", "transformations": [{"type": "resize"}]},
        {
            "url": "http://x.test/a.png",
            "transformations": [{"type": "crop", "options": {"width": 10}}],
        },
        {"url": "http://x.test/a.png", "outputFormat": "gif"},
        {"url": "ftp://x.test/a.png"},
        {"url": "http://x.test/a.png", "quality": 0},
    ],
)
def test_bad_requests_are_refused_when_scheduling(db, payload):
    with pytest.raises(InvalidTaskRequest):
        schedule("image.process", payload)
