"""``image.process``: download an image, transform it with Pillow, store the result.

The download goes through the SSRF guard (:func:`taskhub.safety.net.guarded_client`) with a size
limit; the output is saved through Django's default storage (``MEDIA_ROOT`` — ``var/media`` —
by default, or any django-storages backend such as S3) and the result's url is taskhub's
authenticated ``/api/images/<name>``, or the storage's own url (``IMAGE_URLS_FROM_STORAGE``).
Bad input fails at once with a clear error: not an image, a truncated file, an image larger than
``IMAGE_MAX_PIXELS`` (a decompression bomb) — or a step whose output would be (each step's
output size is worked out before the step runs) — a crop outside the image. Server errors and
network trouble are retried.
"""

from __future__ import annotations

import io
import math
import posixpath
from typing import TYPE_CHECKING, Any, Literal

import httpx
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import NoReverseMatch, reverse
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, model_validator

from ..conf import taskhub_settings
from ..definitions.registry import task
from ..definitions.retry import Exponential
from ..errors import PermanentError, import_extra
from ..safety.net import guarded_client
from .bodies import read_body

if TYPE_CHECKING:
    from PIL import Image

FORMATS = {"webp": ("WEBP", "webp"), "png": ("PNG", "png"), "jpeg": ("JPEG", "jpg")}
#: sharp's ``fit`` for a resize with both sides (https://sharp.pixelplumbing.com/api-resize)
FITS = ("cover", "contain", "fill", "inside", "outside")
RESIZE_OPTIONS = {"width", "height", "fit"}
MAX_SIDE = 20_000


class TemporaryDownloadError(Exception):
    """The image server failed in a way that may pass (5xx, timeout, connection): retried."""


def _side(options: dict, name: str, *, required: bool = True) -> int | None:
    value = options.get(name)
    if value is None:
        if required:
            raise ValueError(f"option {name!r} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_SIDE:
        raise ValueError(f"option {name!r} must be a whole number from 1 to {MAX_SIDE}")
    return value


class Transformation(BaseModel):
    """One step. Options by type:

    - ``resize``: ``width`` and/or ``height`` (the other keeps the aspect ratio); with both,
      ``fit`` as sharp means it: ``fill`` (the default: stretch to exactly that size), ``cover``
      (keep the aspect ratio, crop to exactly that size, centred), ``contain`` (keep it,
      letterbox to exactly that size), ``inside`` (keep it, as large as fits within),
      ``outside`` (keep it, as small as covers both sides)
    - ``crop``: ``left``, ``top``, ``width``, ``height`` (pixels)
    - ``rotate``: ``degrees`` (counter-clockwise), ``expand`` (default true)
    - ``grayscale``: none
    - ``thumbnail``: ``width``, ``height`` — fit inside, keep the aspect ratio, never enlarge
    - ``webp``, ``png``, ``jpeg``: the output format, as sharp's ``.webp()`` etc. say it (the
      same as ``outputFormat``); ``quality`` in its options. It may come anywhere in the list.
    """

    type: Literal["resize", "crop", "rotate", "grayscale", "thumbnail", "webp", "png", "jpeg"]
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def valid_options(self) -> Transformation:
        o = self.options
        if self.type == "resize":
            if (
                _side(o, "width", required=False) is None
                and _side(o, "height", required=False) is None
            ):
                raise ValueError("resize needs width and/or height")
            if unknown := sorted(set(o) - RESIZE_OPTIONS):
                raise ValueError(f"resize has no option {', '.join(map(repr, unknown))}")
            if o.get("fit", "fill") not in FITS:
                raise ValueError(f"resize fit must be one of {', '.join(FITS)}")
        elif self.type in FORMATS:
            if unknown := sorted(set(o) - {"quality"}):
                raise ValueError(f"{self.type} has no option {', '.join(map(repr, unknown))}")
            quality = o.get("quality", 85)
            if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
                raise ValueError("quality must be a whole number from 1 to 100")
        elif self.type in ("crop", "thumbnail"):
            _side(o, "width")
            _side(o, "height")
            if self.type == "crop":
                for name in ("left", "top"):
                    value = o.get(name, 0)
                    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                        raise ValueError(f"option {name!r} must be a whole number >= 0")
        elif self.type == "rotate":
            degrees = o.get("degrees")
            if isinstance(degrees, bool) or not isinstance(degrees, int | float):
                raise ValueError("rotate needs a number of degrees")
        return self


class ProcessImage(BaseModel):
    """Payload of ``image.process``."""

    model_config = ConfigDict(populate_by_name=True)

    url: AnyHttpUrl
    transformations: list[Transformation] = Field(default_factory=list, max_length=20)
    output_format: Literal["webp", "png", "jpeg"] = Field(default="webp", alias="outputFormat")
    quality: int = Field(default=85, ge=1, le=100)

    @model_validator(mode="after")
    def one_output_format(self) -> ProcessImage:
        """A format step (sharp's ``.webp()``) sets the output format and quality; two that
        disagree, or one that contradicts an explicit ``outputFormat``, are refused rather
        than one of them silently winning."""
        formats = {step.type for step in self.transformations if step.type in FORMATS}
        if "output_format" in self.model_fields_set:
            formats.add(self.output_format)
        if len(formats) > 1:
            raise ValueError(f"conflicting output formats: {', '.join(sorted(formats))}")
        for step in self.transformations:
            if step.type in FORMATS:
                self.output_format = step.type
                if "quality" in step.options:
                    self.quality = step.options["quality"]
        return self


def download(url: str, limit: int) -> bytes:
    """The body of ``url``, refusing more than ``limit`` bytes."""
    try:
        with guarded_client(timeout=30) as client, client.stream("GET", url) as response:
            status = response.status_code
            if status >= 500:
                raise TemporaryDownloadError(f"image server answered {status}")
            if status >= 300:
                raise PermanentError(f"image server answered {status} for {url}")
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise PermanentError(f"image is {declared} bytes, over the limit of {limit}")
            return read_body(response, limit, limit_name="IMAGE_MAX_BYTES")
    except httpx.TransportError as exc:
        raise TemporaryDownloadError(f"cannot download {url}: {exc}") from exc


def pillow() -> tuple[Any, Any, type[Exception]]:
    """Pillow's ``Image``, ``ImageOps`` and ``UnidentifiedImageError``, imported on use: Pillow is
    the ``[images]`` extra, and without it only this task fails (MissingExtra, at once)."""
    import_extra("PIL", extra="images", needed_by="taskhub's image.process task", package="Pillow")
    from PIL import Image, ImageOps, UnidentifiedImageError

    return Image, ImageOps, UnidentifiedImageError


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Decode fully, turning every way a file can be bad into a PermanentError."""
    pil_image, pil_ops, unidentified = pillow()
    try:
        image = pil_image.open(io.BytesIO(data))
    except unidentified:
        raise PermanentError("the file is not an image Pillow can read") from None
    except pil_image.DecompressionBombError as exc:
        raise PermanentError(f"refused as a decompression bomb: {exc}") from None
    width, height = image.size
    # Checked on the header, before decoding: a small file can declare billions of pixels.
    if width * height > max_pixels:
        raise PermanentError(
            f"refused as a decompression bomb: {width}x{height} is {width * height} pixels, "
            f"over the limit of {max_pixels}"
        )
    try:
        image.load()
    except pil_image.DecompressionBombError as exc:
        raise PermanentError(f"refused as a decompression bomb: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise PermanentError(f"the image file is truncated or corrupt: {exc}") from None
    upright = pil_ops.exif_transpose(image)
    upright.format = image.format
    return upright


def resize_target(size: tuple[int, int], options: dict) -> tuple[int, int]:
    """The size ``resize`` produces: the side not given keeps the aspect ratio; with both,
    ``inside`` / ``outside`` scale by the smaller / larger ratio, the other fits give exactly
    the size asked for."""
    width, height = options.get("width"), options.get("height")
    fit = options.get("fit", "fill")
    if width is not None and height is not None and fit in ("inside", "outside"):
        ratios = (width / size[0], height / size[1])
        scale = min(ratios) if fit == "inside" else max(ratios)
        return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))
    if width is None:
        width = max(1, round(size[0] * height / size[1]))
    if height is None:
        height = max(1, round(size[1] * width / size[0]))
    return width, height


def rotated_size(size: tuple[int, int], degrees: float, expand: bool) -> tuple[int, int]:
    """At least the canvas Pillow's ``rotate`` allocates: quarter turns swap the sides, any other
    angle with ``expand`` grows to the rotated bounding box (plus the pixel Pillow's rounding
    of the corners can add)."""
    width, height = size
    angle = degrees % 360
    if not expand or angle in (0, 180):
        return width, height
    if angle in (90, 270):
        return height, width
    cos, sin = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    return math.ceil(width * cos + height * sin) + 1, math.ceil(width * sin + height * cos) + 1


def output_size(size: tuple[int, int], step: Transformation) -> tuple[int, int]:
    """The size ``step`` turns an image of ``size`` into, worked out without doing it."""
    o = step.options
    if step.type == "resize":
        return resize_target(size, o)
    if step.type == "crop":
        return o["width"], o["height"]
    if step.type == "rotate":
        return rotated_size(size, o["degrees"], o.get("expand", True))
    if step.type == "thumbnail":
        return min(size[0], o["width"]), min(size[1], o["height"])  # never enlarges
    return size


def check_output(image: Image.Image, step: Transformation, max_pixels: int) -> None:
    """Refuse a step whose result would pass ``IMAGE_MAX_PIXELS``: a small input can ask for a
    huge output (a 40x20000 strip resized to 20000 wide is 10 billion pixels), and allocating
    it would take the whole worker down rather than fail this task."""
    width, height = output_size(image.size, step)
    if width * height > max_pixels:
        raise PermanentError(
            f"{step.type} would make a {width}x{height} image ({width * height} pixels), over "
            f"the IMAGE_MAX_PIXELS limit of {max_pixels}"
        )


def apply(image: Image.Image, step: Transformation) -> Image.Image:
    pil_image, pil_ops, _ = pillow()
    o = step.options
    if step.type == "resize":
        target, lanczos = resize_target(image.size, o), pil_image.Resampling.LANCZOS
        both = o.get("width") is not None and o.get("height") is not None
        if both and o.get("fit") == "cover":
            return pil_ops.fit(image, target, lanczos)  # scale to cover, crop the centre
        if both and o.get("fit") == "contain":
            return pil_ops.pad(image, target, lanczos)  # scale to fit, centre on black bars
        return image.resize(target, lanczos)
    if step.type in FORMATS:
        return image  # the encoder's business (ProcessImage.one_output_format)
    if step.type == "crop":
        left, top = o.get("left", 0), o.get("top", 0)
        right, bottom = left + o["width"], top + o["height"]
        if right > image.width or bottom > image.height:
            raise PermanentError(
                f"crop box ({left}, {top}, {right}, {bottom}) is outside the "
                f"{image.width}x{image.height} image"
            )
        return image.crop((left, top, right, bottom))
    if step.type == "rotate":
        return image.rotate(o["degrees"], expand=o.get("expand", True))
    if step.type == "grayscale":
        return pil_ops.grayscale(image)
    thumb = image.copy()
    thumb.thumbnail((o["width"], o["height"]))
    return thumb


def encode(image: Image.Image, output_format: str, quality: int) -> bytes:
    pil_format, _ = FORMATS[output_format]
    if pil_format == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    elif image.mode not in ("RGB", "RGBA", "L", "LA"):
        image = image.convert("RGBA")
    out = io.BytesIO()
    options = {"quality": quality} if pil_format in ("WEBP", "JPEG") else {"optimize": True}
    image.save(out, pil_format, **options)
    return out.getvalue()


def result_url(name: str) -> str:
    """Where the stored image can be fetched: taskhub's authenticated ``/api/images/<name>``
    (taskhub/console/api/files.py), unless ``IMAGE_URLS_FROM_STORAGE`` says the storage serves
    its files itself — or the project's URLconf has no taskhub API to point to."""
    folder, filename = posixpath.split(name)
    if (
        not taskhub_settings.IMAGE_URLS_FROM_STORAGE
        and folder == taskhub_settings.IMAGE_STORAGE_DIR.strip("/")
    ):
        try:
            return reverse("taskhub:image-file", args=[filename])
        except NoReverseMatch:
            pass
    return default_storage.url(name)


def store(data: bytes, name: str) -> str:
    """Save under ``name``, replacing what an earlier attempt of the same task left."""
    if default_storage.exists(name):
        default_storage.delete(name)
    return default_storage.save(name, ContentFile(data))


@task(
    "image.process",
    queue="image-processing",
    schema=ProcessImage,
    # The task-queue document's image queue: 3 attempts, exponential from 2 s (2 → 4).
    max_attempts=3,
    retry=Exponential(initial=2, cap=120),
    timeout=120,
)
def process_image(payload: ProcessImage, ctx) -> dict:
    """Download, transform step by step (progress after each), encode and store the image."""
    pillow()  # before the download: without Pillow nothing here can work
    steps = len(payload.transformations) + 3  # download, decode, transforms…, store
    data = download(str(payload.url), taskhub_settings.IMAGE_MAX_BYTES)
    ctx.set_progress(100 * 1 / steps)
    image = open_image(data, taskhub_settings.IMAGE_MAX_PIXELS)
    source = {
        "width": image.width,
        "height": image.height,
        "format": image.format or "",
        "size": len(data),
    }
    ctx.set_progress(100 * 2 / steps)
    for done, step in enumerate(payload.transformations, start=3):
        ctx.check_cancelled()
        check_output(image, step, taskhub_settings.IMAGE_MAX_PIXELS)
        image = apply(image, step)
        ctx.logger.info("%s -> %dx%d", step.type, image.width, image.height)
        ctx.set_progress(100 * done / steps)
    encoded = encode(image, payload.output_format, payload.quality)
    _, extension = FORMATS[payload.output_format]
    name = store(encoded, f"{taskhub_settings.IMAGE_STORAGE_DIR}/{ctx.task_id}.{extension}")
    return {
        "url": result_url(name),
        "path": name,
        "size": len(encoded),
        "width": image.width,
        "height": image.height,
        "format": payload.output_format,
        "source": source,
    }
