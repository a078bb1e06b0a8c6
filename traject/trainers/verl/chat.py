"""traject Messages as the chat dicts that chat templates (and veRL's token builders) read.

Images (GUI screenshots) become ``{"type": "image", "image": <PIL image>}`` parts, the form
veRL's multimodal processors take.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from traject.types import ImagePart, Message, TextPart


def decode_image(part: ImagePart) -> Any:
    """A PIL image from an inline (base64) ImagePart; a URL part is passed on as its URL."""
    if part.url is not None:
        return part.url
    from PIL import Image

    assert part.data is not None
    img = Image.open(io.BytesIO(base64.b64decode(part.data)))
    img.load()
    return img.convert("RGB")


def chat_dict(message: Message) -> tuple[dict[str, Any], list[Any]]:
    """The chat dict of ``message`` and the images it carries, in order."""
    images: list[Any] = []
    content: Any
    if isinstance(message.content, str):
        content = message.content
    else:
        content = []
        for part in message.content:
            if isinstance(part, TextPart):
                content.append({"type": "text", "text": part.text})
            else:
                img = decode_image(part)
                images.append(img)
                content.append({"type": "image", "image": img})
    d: dict[str, Any] = {"role": message.role, "content": content}
    if message.role == "assistant" and message.tool_calls:
        d["tool_calls"] = [
            {"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": c.raw if c.error is not None and c.raw else c.arguments}}
            for c in message.tool_calls
        ]
    if message.role == "tool":
        if message.tool_call_id is not None:
            d["tool_call_id"] = message.tool_call_id
        if message.name is not None:
            d["name"] = message.name
    return d, images
