"""Boxes and points on a screen: ``(x1, y1, x2, y2)`` with x to the right and y down."""

from __future__ import annotations

from collections.abc import Sequence

Box = tuple[float, float, float, float]


def as_box(value: Sequence[float]) -> Box:
    if len(value) != 4:
        raise ValueError(f"a box needs 4 numbers (x1, y1, x2, y2), got {list(value)!r}")
    x1, y1, x2, y2 = (float(v) for v in value)
    return (x1, y1, x2, y2)


def area(b: Box) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def intersection(a: Box, b: Box) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def iou(a: Box, b: Box) -> float:
    inter = intersection(a, b)
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def strictly_inside(point: Sequence[float], b: Box) -> bool:
    x, y = float(point[0]), float(point[1])
    return b[0] < x < b[2] and b[1] < y < b[3]


def swipe_direction(start: Sequence[float], end: Sequence[float]) -> str:
    """The dominant axis of a swipe: left/right when |dx| > |dy|, else up/down (y grows down)."""
    dx, dy = float(end[0]) - float(start[0]), float(end[1]) - float(start[1])
    if dx == 0 and dy == 0:
        raise ValueError("a swipe that does not move has no direction")
    if abs(dx) > abs(dy):
        return "left" if dx < 0 else "right"
    return "up" if dy < 0 else "down"
