"""BTL-UI ("Blink-Think-Link") rewards for GUI agents: format, blink and link.

An answer looks like::

    <blink>[{"bbox_2d": [x1, y1, x2, y2], "label": "search box"}, ...]</blink>
    <think>...</think>
    <link>[{"Plan": "...", "Action": {"function": "Tap", "point_2d": [x, y]}}]</link>

* format = 1 when the three blocks are there, in that order, from the start of the answer; the
  blink and the link JSON parse; and the link holds exactly one action (an ``{"Action": ...}``
  entry, a bare ``{"function": ...}`` action, or a grounding ``{"point_2d": [x, y]}``).
* blink = 1 when no two predicted regions overlap with IoU >= ``iou_threshold`` and one has
  IoU > ``iou_threshold`` with the target region; 1 when the task gives no target region.
* link = 1 when the action type matches and: for a tap or long press, the point is strictly
  inside the target box and within ``distance_threshold`` of the target point in coordinates
  normalised by the screen size; for a swipe, the direction matches; for typed text, the token
  F1 with the target text is >= ``text_f1_threshold``; for other actions (home, back, ...),
  the actions are equal. A grounding answer (``point_2d`` alone) scores 1 inside the box.
* total = 0.1 * format + 0.3 * blink + 0.6 * link (weights configurable).

Checked against the reference code (xiaomi-research/btl-ui, ``recipe/btl-ui/reward_fn.py``,
weights from its ``run_7b.sh``). Differences, on purpose:

* The reference requires the JSON inside ```` ```json ```` fences (its link regex even carries
  a stray character that makes its format check always fail); here fences are optional,
  unless ``require_code_fence``.
* The reference normalises tap distances by the model's resized input size
  (``smart_resize``); here by the target's ``image_size`` (the frame of its coordinates),
  which is the same thing when the coordinates are the model's.
* Action names are compared case-, space- and underscore-insensitively (``long_press`` ==
  ``LongPress``); a swipe may give its direction or its start and end points.
* Text F1 is the reference's: sets of lower-cased whitespace tokens.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator

from traject.rewards.base import Reward
from traject.rewards.gui.geometry import Box, as_box, iou, strictly_inside, swipe_direction
from traject.types import RewardResult, Task, Trajectory

_LAYOUT = re.compile(r"\s*<blink>(.*?)</blink>\s*<think>(.*?)</think>\s*<link>(.*?)</link>", re.DOTALL)
_FENCED = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL | re.IGNORECASE)


class BTLConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format_weight: float = 0.1
    blink_weight: float = 0.3
    link_weight: float = 0.6
    iou_threshold: float = 0.5
    distance_threshold: float = 0.14
    text_f1_threshold: float = 0.5
    require_code_fence: bool = False
    target_key: str = "gui_target"
    tap_actions: list[str] = Field(default_factory=lambda: ["tap", "click", "longpress"])
    name: str = "btl"


class BTLTarget(BaseModel):
    """The reference for one step: the target region, the expected action, the screen size."""

    model_config = ConfigDict(extra="forbid")

    bbox: Box | None = None
    action: dict[str, JsonValue] | None = None
    image_size: tuple[float, float] | None = None

    @field_validator("bbox", mode="before")
    @classmethod
    def _box(cls, v: Any) -> Any:
        return None if v in (None, []) else as_box(v)


class BTLScore(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: float
    blink: float
    link: float
    total: float
    error: str | None = None


def action_name(value: Any) -> str:
    return re.sub(r"[\s_\-]", "", str(value)).lower()


def set_token_f1(pred: str, gold: str) -> float:
    p, g = set(pred.lower().split()), set(gold.lower().split())
    common = p & g
    if not p or not g or not common:
        return 0.0
    precision, recall = len(common) / len(p), len(common) / len(g)
    return 2 * precision * recall / (precision + recall)


def _load(block: str, require_fence: bool) -> Any:
    m = _FENCED.match(block)
    if m:
        block = m.group(1)
    elif require_fence:
        raise ValueError("the block's JSON is not in a ```json fence")
    return json.loads(block)


class ParsedAnswer(BaseModel):
    blink: list[Any]
    action: dict[str, Any]           # the one link entry


def parse_answer(text: str, *, require_fence: bool = False) -> ParsedAnswer:
    """The blink list and the single link entry; ValueError saying what is wrong otherwise."""
    m = _LAYOUT.match(text)
    if not m:
        raise ValueError("the answer is not <blink>...</blink><think>...</think><link>...</link> in order")
    try:
        blink = _load(m.group(1), require_fence)
        link = _load(m.group(3), require_fence)
    except json.JSONDecodeError as exc:
        raise ValueError(f"a block is not JSON: {exc}") from None
    if not isinstance(blink, list):
        raise ValueError("<blink> must hold a JSON list of regions")
    if isinstance(link, dict):
        link = [link]
    if not isinstance(link, list) or len(link) != 1 or not isinstance(link[0], dict):
        raise ValueError("<link> must hold exactly one action")
    entry = link[0]
    if not ("Action" in entry and isinstance(entry["Action"], dict)) and "point_2d" not in entry \
            and "function" not in entry:
        raise ValueError("the <link> entry is neither {'Action': {...}}, an action, nor {'point_2d': [x, y]}")
    return ParsedAnswer(blink=blink, action=entry)


def blink_reward(blink: list[Any], target: BTLTarget, iou_threshold: float) -> float:
    if target.bbox is None:
        return 1.0
    try:
        boxes = [as_box(r["bbox_2d"]) for r in blink]
    except (KeyError, TypeError, ValueError):
        return 0.0
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            if iou(boxes[i], boxes[j]) >= iou_threshold:
                return 0.0
    return 1.0 if any(iou(b, target.bbox) > iou_threshold for b in boxes) else 0.0


def _normalised_distance(p: Any, q: Any, size: tuple[float, float]) -> float:
    w, h = size
    return float(((float(p[0]) - float(q[0])) / w) ** 2 + ((float(p[1]) - float(q[1])) / h) ** 2) ** 0.5


def _direction(action: dict[str, Any]) -> str | None:
    if action.get("direction"):
        return str(action["direction"]).lower()
    start = action.get("start_point_2d") or action.get("point_2d")
    end = action.get("end_point_2d")
    if start and end:
        return swipe_direction(start, end)
    return None


def link_reward(entry: dict[str, Any], target: BTLTarget, config: BTLConfig) -> float:
    if "Action" not in entry and "function" not in entry:          # grounding: a bare point
        return 1.0 if target.bbox is not None and strictly_inside(entry["point_2d"], target.bbox) else 0.0
    pred = entry["Action"] if "Action" in entry else entry
    gold = target.action
    if gold is None:
        raise ValueError("the target has no action to compare the link's action with")
    kind = action_name(pred.get("function"))
    if kind != action_name(gold.get("function")):
        return 0.0
    if kind in {action_name(a) for a in config.tap_actions}:
        point = pred.get("point_2d")
        if not point or len(point) != 2:
            return 0.0
        ok = True
        if target.bbox is not None:
            ok = ok and strictly_inside(point, target.bbox)
        if gold.get("point_2d") is not None:
            if target.image_size is None:
                raise ValueError("a tap target with a point needs image_size to normalise distances")
            ok = ok and _normalised_distance(point, gold["point_2d"], target.image_size) < config.distance_threshold
        elif target.bbox is None:
            raise ValueError("a tap target needs a bbox or a point_2d")
        return 1.0 if ok else 0.0
    if kind == "swipe":
        d = _direction(pred)
        return 1.0 if d is not None and d == _direction(gold) else 0.0
    if kind == "type":
        return 1.0 if set_token_f1(str(pred.get("text", "")), str(gold.get("text", ""))) >= config.text_f1_threshold else 0.0
    same = {k: v for k, v in pred.items() if k != "function"} == {k: v for k, v in gold.items() if k != "function"}
    return 1.0 if same else 0.0


def btl_score(text: str, target: BTLTarget, config: BTLConfig | None = None) -> BTLScore:
    """The three BTL rewards of one answer, and their weighted total."""
    c = config or BTLConfig()
    try:
        parsed = parse_answer(text, require_fence=c.require_code_fence)
    except ValueError as exc:
        blink = 1.0 if target.bbox is None else 0.0  # as the reference: no target region, blink 1
        return BTLScore(format=0.0, blink=blink, link=0.0, error=str(exc), total=c.blink_weight * blink)
    blink = blink_reward(parsed.blink, target, c.iou_threshold)
    link = link_reward(parsed.action, target, c)
    return BTLScore(format=1.0, blink=blink, link=link,
                    total=c.format_weight + c.blink_weight * blink + c.link_weight * link)


class BTLReward(Reward):
    """BTL-UI over a trajectory: step ``k``'s assistant text against target ``k``.

    ``task.data[target_key]`` is one target (single-step grounding or navigation) or a list of
    targets, one per step. ``total`` is the mean over the targets (steps never taken score 0);
    ``per_step`` holds each scored step's total.
    """

    def __init__(self, config: BTLConfig | None = None) -> None:
        self.config = config or BTLConfig()
        self.name = self.config.name

    def targets(self, task: Task) -> list[BTLTarget]:
        key = self.config.target_key
        if key not in task.data:
            raise ValueError(f"task {task.id!r} has no GUI target: task.data[{key!r}] is missing "
                             "(give {bbox, action, image_size}, or a list of them, one per step)")
        raw = task.data[key]
        items = raw if isinstance(raw, list) else [raw]
        try:
            return [BTLTarget.model_validate(t) for t in items]
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ValueError(f"task {task.id!r}: task.data[{key!r}] is not a GUI target at "
                             f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from exc

    async def score(self, traj: Trajectory, task: Task) -> RewardResult:
        targets = self.targets(task)
        scores = [btl_score(step.action.text, t, self.config) for step, t in zip(traj.steps, targets)]
        n = len(targets)
        mean = lambda xs: sum(xs) / n  # noqa: E731 - steps never taken count as 0
        total = mean([s.total for s in scores])
        return RewardResult(
            total=total,
            components={self.name: total, "format": mean([s.format for s in scores]),
                        "blink": mean([s.blink for s in scores]), "link": mean([s.link for s in scores])},
            per_step=[s.total for s in scores],
            success=len(scores) == n and all(s.link == 1.0 for s in scores),
            info={"steps": [s.model_dump() for s in scores]},
        )
