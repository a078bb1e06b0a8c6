"""Replay of a GUI trajectory: each screenshot the policy saw, with what it did marked on it.

Everything comes from the trajectory alone (the env records the actions as executed in
``step.info["gui"]``), so stored trajectories replay without a browser.

* :func:`gui_frames` -> one :class:`ReplayFrame` per step (the screenshot the action was taken
  on, the actions, the page's target region, the reward so far) and a last frame after the
  last action.
* :func:`frame_svg` -> an SVG string: the screenshot embedded, markers drawn over it. Needs
  nothing beyond the standard library; an HTML report can inline it.
* :func:`frame_png` -> PNG bytes with the markers drawn in (Pillow, the ``gui`` extra).
* :func:`render_trajectory` writes ``step-000.png`` (or ``.svg``) ... into a folder.

Markers: a red ring and cross at a click point (two rings for a double click); a red arrow for
a drag or a scroll; a red rectangle round an element acted on by id; the page's target region
as a dashed green rectangle; the action's text in a bar at the bottom.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import escape

from pydantic import BaseModel, ConfigDict, Field

from traject.types import ImagePart, Message, Trajectory

MARK = "#e8112d"
TARGET = "#18a558"


class ReplayFrame(BaseModel):
    """One frame: ``image`` is the screenshot the step's actions were taken on."""

    model_config = ConfigDict(extra="forbid")

    index: int
    image: ImagePart
    actions: list[dict[str, Any]] = Field(default_factory=list)
    target: dict[str, Any] | None = None
    caption: str = ""
    reward: float | None = None
    final: bool = False

    @property
    def size(self) -> tuple[int, int]:
        return self.image.width or 0, self.image.height or 0


def _last_image(messages: Iterable[Message]) -> ImagePart | None:
    found = None
    for m in messages:
        for img in m.images:
            found = img
    return found


def _caption(step_action: Message, actions: list[dict[str, Any]]) -> str:
    if actions:
        parts = []
        for a in actions:
            args = ", ".join(f"{k}={v!r}" for k, v in a.get("arguments", {}).items())
            parts.append(f"{a['name']}({args})" + ("" if a.get("ok", True) else " [error]"))
        return "; ".join(parts)
    return "(no action) " + step_action.text[:80]


def gui_frames(traj: Trajectory) -> list[ReplayFrame]:
    """The frames of a GUI trajectory (empty when it has no screenshots)."""
    first_action = next((i for i, m in enumerate(traj.messages) if m.role == "assistant"), len(traj.messages))
    before = _last_image(traj.messages[:first_action])
    frames: list[ReplayFrame] = []
    for step in traj.steps:
        gui = step.info.get("gui") if isinstance(step.info.get("gui"), dict) else {}
        actions = [a for a in gui.get("actions", []) if isinstance(a, dict)]
        if before is not None:
            frames.append(ReplayFrame(index=step.index, image=before, actions=actions,
                                      target=gui.get("target") if isinstance(gui.get("target"), dict) else None,
                                      caption=_caption(step.action, actions), reward=step.reward))
        after = _last_image(step.observations)
        before = after if after is not None else before
    if before is not None and traj.steps:
        total = traj.reward.total if traj.reward is not None else None
        frames.append(ReplayFrame(index=len(traj.steps), image=before, final=True, reward=total,
                                  caption=f"end: {traj.status.value}" + (f", reward {total:g}" if total is not None else "")))
    return frames


# --- geometry of the markers, shared by the SVG and PNG renderers ------------------------------

Shape = tuple[str, dict[str, Any]]


def frame_shapes(frame: ReplayFrame) -> list[Shape]:
    """What to draw: ("box", x1,y1,x2,y2, dashed), ("ring", x,y,r), ("cross", x,y,r),
    ("arrow", x1,y1,x2,y2)."""
    shapes: list[Shape] = []
    if frame.target and isinstance(frame.target.get("bbox"), list | tuple):
        x1, y1, x2, y2 = frame.target["bbox"]
        shapes.append(("box", {"x1": x1, "y1": y1, "x2": x2, "y2": y2, "color": TARGET, "dashed": True}))
    for a in frame.actions:
        name, args = a.get("name"), a.get("arguments", {})
        point = a.get("point")
        if "box" in a:
            x, y, w, h = a["box"]
            shapes.append(("box", {"x1": x, "y1": y, "x2": x + w, "y2": y + h, "color": MARK, "dashed": False}))
        if name == "drag" and point and a.get("to"):
            (x1, y1), (x2, y2) = point, a["to"]
            shapes.append(("arrow", {"x1": x1, "y1": y1, "x2": x2, "y2": y2}))
        elif name == "scroll" and point:
            x, y = point
            dx, dy = float(args.get("dx", 0) or 0), float(args.get("dy", 0) or 0)
            norm = max(abs(dx), abs(dy), 1.0)
            shapes.append(("arrow", {"x1": x, "y1": y, "x2": x + 40 * dx / norm, "y2": y + 40 * dy / norm}))
        elif point:
            x, y = point
            shapes.append(("ring", {"x": x, "y": y, "r": 9}))
            shapes.append(("cross", {"x": x, "y": y, "r": 4}))
            if name in ("double_click",):
                shapes.append(("ring", {"x": x, "y": y, "r": 14}))
    return shapes


def frame_svg(frame: ReplayFrame) -> str:
    """The frame as a standalone SVG (screenshot embedded as a data URL, markers on top)."""
    w, h = frame.size
    bar = 22
    href = frame.image.url or f"data:{frame.image.mime_type};base64,{frame.image.data}"
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h + bar}" '
           f'viewBox="0 0 {w} {h + bar}">',
           f'<image href="{escape(href)}" x="0" y="0" width="{w}" height="{h}"/>']
    for kind, s in frame_shapes(frame):
        if kind == "box":
            dash = ' stroke-dasharray="5,3"' if s["dashed"] else ""
            out.append(f'<rect x="{s["x1"]}" y="{s["y1"]}" width="{s["x2"] - s["x1"]}" height="{s["y2"] - s["y1"]}" '
                       f'fill="none" stroke="{s["color"]}" stroke-width="2"{dash}/>')
        elif kind == "ring":
            out.append(f'<circle cx="{s["x"]}" cy="{s["y"]}" r="{s["r"]}" fill="none" stroke="{MARK}" stroke-width="2.5"/>')
        elif kind == "cross":
            x, y, r = s["x"], s["y"], s["r"]
            out.append(f'<path d="M{x - r} {y}H{x + r}M{x} {y - r}V{y + r}" stroke="{MARK}" stroke-width="2"/>')
        elif kind == "arrow":
            out.append(f'<line x1="{s["x1"]}" y1="{s["y1"]}" x2="{s["x2"]}" y2="{s["y2"]}" stroke="{MARK}" '
                       'stroke-width="3"/>')
            out.append(f'<circle cx="{s["x2"]}" cy="{s["y2"]}" r="5" fill="{MARK}"/>')
    caption = escape(f"{frame.index}: {frame.caption}"[:140])
    out.append(f'<rect x="0" y="{h}" width="{w}" height="{bar}" fill="#222"/>')
    out.append(f'<text x="4" y="{h + 15}" font-family="monospace" font-size="11" fill="#fff">{caption}</text>')
    out.append("</svg>")
    return "".join(out)


def frame_png(frame: ReplayFrame) -> bytes:
    """The frame as PNG bytes with the markers drawn in (needs Pillow: the ``gui`` extra)."""
    try:
        from PIL import Image, ImageDraw
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError("rendering PNG frames needs Pillow: install traject with the `gui` extra, "
                          "or use frame_svg") from exc
    if frame.image.data is None:
        raise ValueError("frame_png needs an inline screenshot (ImagePart.data); this one is a URL")
    shot = Image.open(io.BytesIO(base64.b64decode(frame.image.data))).convert("RGB")
    bar = 22
    canvas = Image.new("RGB", (shot.width, shot.height + bar), "#222222")
    canvas.paste(shot, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for kind, s in frame_shapes(frame):
        if kind == "box":
            box = [s["x1"], s["y1"], s["x2"], s["y2"]]
            if s["dashed"]:
                _dashed_rect(draw, box, s["color"])
            else:
                draw.rectangle(box, outline=s["color"], width=2)
        elif kind == "ring":
            x, y, r = s["x"], s["y"], s["r"]
            draw.ellipse([x - r, y - r, x + r, y + r], outline=MARK, width=3)
        elif kind == "cross":
            x, y, r = s["x"], s["y"], s["r"]
            draw.line([x - r, y, x + r, y], fill=MARK, width=2)
            draw.line([x, y - r, x, y + r], fill=MARK, width=2)
        elif kind == "arrow":
            draw.line([s["x1"], s["y1"], s["x2"], s["y2"]], fill=MARK, width=3)
            draw.ellipse([s["x2"] - 5, s["y2"] - 5, s["x2"] + 5, s["y2"] + 5], fill=MARK)
    draw.text((4, shot.height + 5), f"{frame.index}: {frame.caption}"[:140], fill="#ffffff")
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


def _dashed_rect(draw: Any, box: list[float], color: str, dash: float = 5, gap: float = 3) -> None:
    x1, y1, x2, y2 = box
    for (ax, ay), (bx, by) in (((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)), ((x2, y2), (x1, y2)), ((x1, y2), (x1, y1))):
        length = max(abs(bx - ax), abs(by - ay))
        t = 0.0
        while t < length:
            e = min(t + dash, length)
            draw.line([ax + (bx - ax) * t / length, ay + (by - ay) * t / length,
                       ax + (bx - ax) * e / length, ay + (by - ay) * e / length], fill=color, width=2)
            t = e + gap


def render_trajectory(traj: Trajectory, out_dir: str | Path, *,
                      format: Literal["png", "svg"] = "png") -> list[Path]:  # noqa: A002
    """Write one file per frame (``step-000.png``, ...) and ``frames.json`` (the frames'
    captions and actions, without the images) into ``out_dir``; returns the image paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    index = []
    for frame in gui_frames(traj):
        name = f"step-{frame.index:03d}{'-final' if frame.final else ''}.{format}"
        path = out / name
        if format == "png":
            path.write_bytes(frame_png(frame))
        else:
            path.write_text(frame_svg(frame), encoding="utf-8")
        paths.append(path)
        index.append({"file": name, **frame.model_dump(exclude={"image"})})
    (out / "frames.json").write_text(json.dumps(index, indent=1), encoding="utf-8")
    return paths
