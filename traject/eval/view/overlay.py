"""Where a GUI action lands on a screenshot, drawn as an SVG overlay.

The action comes from the step's tool call arguments: ``x``/``y``; ``coordinate``, ``point``
or ``position`` as [x, y]; ``bbox``/``box`` as [x1, y1, x2, y2]; and, for drags, an end point
(``end_x``/``end_y``, ``to_x``/``to_y`` or ``end_coordinate``). Coordinates in [0, 1] are taken
as fractions of the image, larger ones as pixels.

>>> action_marks({"x": 0.5, "y": 0.25})
[Mark(kind='point', coords=(0.5, 0.25))]
>>> image_size(base64.b64encode(_png_header(640, 480)).decode())
(640, 480)
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from html import escape
from typing import Any


@dataclass(frozen=True)
class Mark:
    kind: str                      # "point", "box" or "drag"
    coords: tuple[float, ...]


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        return None
    try:
        return float(v)
    except ValueError:
        return None


def _pair(v: Any) -> tuple[float, float] | None:
    if isinstance(v, (list, tuple)) and len(v) == 2:
        a, b = _num(v[0]), _num(v[1])
        if a is not None and b is not None:
            return a, b
    return None


def action_marks(args: dict[str, Any]) -> list[Mark]:
    marks: list[Mark] = []
    start: tuple[float, float] | None = None
    x, y = _num(args.get("x")), _num(args.get("y"))
    if x is not None and y is not None:
        start = (x, y)
    for key in ("coordinate", "point", "position", "start_coordinate"):
        if start is None and (p := _pair(args.get(key))) is not None:
            start = p
    for key in ("bbox", "box"):
        v = args.get(key)
        if isinstance(v, (list, tuple)) and len(v) == 4 and all(_num(c) is not None for c in v):
            marks.append(Mark("box", tuple(float(c) for c in v)))  # type: ignore[arg-type]
    end: tuple[float, float] | None = None
    for kx, ky in (("end_x", "end_y"), ("to_x", "to_y"), ("x2", "y2")):
        ex, ey = _num(args.get(kx)), _num(args.get(ky))
        if ex is not None and ey is not None:
            end = (ex, ey)
    if end is None:
        end = _pair(args.get("end_coordinate")) or _pair(args.get("to"))
    if start is not None and end is not None:
        marks.append(Mark("drag", (*start, *end)))
    elif start is not None:
        marks.append(Mark("point", start))
    return marks


def _png_header(w: int, h: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I4sII", 13, b"IHDR", w, h) + b"\x08\x02\x00\x00\x00"


def image_size(data_b64: str) -> tuple[int, int] | None:
    """Width and height of a base64 PNG, JPEG or GIF, from its header."""
    try:
        head = base64.b64decode(data_b64[:65536] + "=" * (-len(data_b64[:65536]) % 4), validate=False)
    except (ValueError, TypeError):
        return None
    if head.startswith(b"\x89PNG") and len(head) >= 24:
        w, h = struct.unpack(">II", head[16:24])
        return int(w), int(h)
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        w, h = struct.unpack("<HH", head[6:10])
        return int(w), int(h)
    if head.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 < len(head):
            if head[i] != 0xFF:
                i += 1
                continue
            marker = head[i + 1]
            length = struct.unpack(">H", head[i + 2:i + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                h, w = struct.unpack(">HH", head[i + 5:i + 9])
                return int(w), int(h)
            i += 2 + length
    return None


def _scale(coords: tuple[float, ...], w: int, h: int) -> tuple[float, ...]:
    if all(0.0 <= c <= 1.0 for c in coords):
        return tuple(c * (w if i % 2 == 0 else h) for i, c in enumerate(coords))
    return coords


def overlay_svg(marks: list[Mark], w: int, h: int, label: str) -> str:
    """An SVG laid over an image of w x h pixels, marking the action."""
    r = max(6.0, min(w, h) * 0.03)
    parts = [f'<svg class="overlay" viewBox="0 0 {w} {h}" preserveAspectRatio="none" '
             f'xmlns="http://www.w3.org/2000/svg">']
    for m in marks:
        c = _scale(m.coords, w, h)
        if m.kind == "point":
            parts.append(f'<circle class="mark" cx="{c[0]:g}" cy="{c[1]:g}" r="{r:g}" fill="rgba(255,0,0,0.85)" '
                         f'stroke="white" stroke-width="{r / 4:g}"/>')
            parts.append(f'<text x="{c[0] + r * 1.3:g}" y="{c[1] - r * 1.3:g}" font-size="{r * 1.6:g}" '
                         f'fill="red" stroke="white" stroke-width="{r / 4:g}" paint-order="stroke" font-weight="bold">{escape(label)}</text>')
        elif m.kind == "box":
            x1, y1, x2, y2 = c
            parts.append(f'<rect class="mark" x="{min(x1, x2):g}" y="{min(y1, y2):g}" width="{abs(x2 - x1):g}" '
                         f'height="{abs(y2 - y1):g}" fill="rgba(255,0,0,0.25)" stroke="red" stroke-width="{r / 3:g}"/>')
        else:
            x1, y1, x2, y2 = c
            parts.append(f'<line class="mark" x1="{x1:g}" y1="{y1:g}" x2="{x2:g}" y2="{y2:g}" stroke="red" '
                         f'stroke-width="{r / 2:g}"/><circle cx="{x1:g}" cy="{y1:g}" r="{r:g}" fill="red"/>'
                         f'<circle cx="{x2:g}" cy="{y2:g}" r="{r / 2:g}" fill="red"/>')
    parts.append("</svg>")
    return "".join(parts)
