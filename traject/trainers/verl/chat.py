"""Images of traject Messages in the form veRL's multimodal processors take.

Screenshots (GUI envs) are inline base64 ImageParts; the processor wants PIL images. The
prompt ids themselves come from traject's one token builder (ChatRenderer).
"""

from __future__ import annotations

import base64
import io
from typing import Any

from traject.types import ImagePart


def decode_image(part: ImagePart) -> Any:
    """A PIL image from an inline (base64) ImagePart; a URL part is passed on as its URL."""
    if part.url is not None:
        return part.url
    from PIL import Image

    assert part.data is not None
    img = Image.open(io.BytesIO(base64.b64decode(part.data)))
    img.load()
    return img.convert("RGB")
