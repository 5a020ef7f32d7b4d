"""How the sandbox judges a KYC document, for both providers, deterministically:

* a file that is not a readable image → rejected ("document is not a readable image");
* a file named ``*blurry*`` → needs review ("image is too blurry to read");
* a file named ``*expired*`` → expired ("document has expired");
* anything else → approved.
"""

from __future__ import annotations

import io


def decide(filename: str, content: bytes) -> tuple[str, list[str]]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(content)) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return "rejected", ["document is not a readable image"]
    name = filename.lower()
    if "blurry" in name:
        return "needs_review", ["image is too blurry to read"]
    if "expired" in name:
        return "expired", ["document has expired"]
    return "approved", []
