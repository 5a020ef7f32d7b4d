"""image.process bounds every step's output, not only the input, by ``IMAGE_MAX_PIXELS``.

The handler runs in this process against the local HTTP server, with the limit set low so that
an output over it is still small: the test never allocates much, whether the check works or not.
"""

from __future__ import annotations

import io
import logging
import uuid

import pytest
from PIL import Image

from taskhub.builtins.images import ProcessImage, process_image
from taskhub.errors import PermanentError

LIMIT = 10_000  # pixels


def png_bytes(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(out, "PNG")
    return out.getvalue()


class HandlerContext:
    """What process_image uses of a TaskContext: an id, progress, a logger, cancellation."""

    def __init__(self) -> None:
        self.task_id = str(uuid.uuid4())
        self.logger = logging.getLogger("tests.image_limits")
        self.progress: list[float] = []

    def set_progress(self, value: float) -> None:
        self.progress.append(value)

    def check_cancelled(self) -> None:
        pass


@pytest.fixture
def low_limit(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)  # what a step that runs stores stays out of var/
    settings.TASKHUB = {**settings.TASKHUB, "IMAGE_MAX_PIXELS": LIMIT}


def run(url: str, *steps: dict) -> dict:
    payload = ProcessImage.model_validate(
        {"url": url, "outputFormat": "png", "transformations": list(steps)}
    )
    return process_image(payload, HandlerContext())


@pytest.mark.parametrize(
    ("size", "step", "output"),
    [
        # a strip within the limit, resized to its long side: 2000 x 1000 out
        ((40, 20), {"type": "resize", "options": {"width": 2000}}, "2000x1000"),
        ((40, 20), {"type": "resize", "options": {"width": 200, "height": 200}}, "200x200"),
        # a 1 x 9000 line turned 45 degrees: the expanded canvas is ~6365 x 6365
        ((1, 9000), {"type": "rotate", "options": {"degrees": 45}}, "6366x6366"),
    ],
)
def test_a_step_whose_output_passes_the_pixel_limit_is_refused_before_it_runs(
    low_limit, web, size, step, output
):
    url = web.add_file(f"small-{uuid.uuid4().hex}.png", png_bytes(*size), "image/png")

    with pytest.raises(PermanentError) as refused:
        run(url, step)

    assert output in str(refused.value)
    assert f"IMAGE_MAX_PIXELS limit of {LIMIT}" in str(refused.value)


def test_steps_within_the_limit_still_run(low_limit, web):
    url = web.add_file(f"strip-{uuid.uuid4().hex}.png", png_bytes(40, 20), "image/png")

    result = run(
        url,
        {"type": "resize", "options": {"width": 100}},  # 100 x 50
        {"type": "rotate", "options": {"degrees": 90}},  # 50 x 100
        {"type": "rotate", "options": {"degrees": 30, "expand": False}},  # same canvas
        {"type": "crop", "options": {"left": 0, "top": 0, "width": 50, "height": 60}},
    )

    assert (result["width"], result["height"]) == (50, 60)


def test_a_later_step_is_checked_against_the_output_of_the_ones_before(low_limit, web):
    url = web.add_file(f"grow-{uuid.uuid4().hex}.png", png_bytes(20, 20), "image/png")

    with pytest.raises(PermanentError, match="120x120"):
        # 80 x 80 passes (6,400 pixels); doubling it again would be 14,400
        run(
            url,
            {"type": "resize", "options": {"width": 80}},
            {"type": "resize", "options": {"width": 120}},
        )
