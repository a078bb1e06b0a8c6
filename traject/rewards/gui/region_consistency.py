"""Region consistency (GUI-RC / GUI-RCPO, "Test-Time Reinforcement Learning for GUI Grounding
via Region Consistency", ZJU-REAL, 2025): the G samples of one task vote on the screen.

Each sample's answer gives a region: four numbers are a box ``[x1, y1, x2, y2]``, two numbers
are a point, made a square of side ``point_box_size`` around it; anything else is an empty
region (no vote, reward 0). Regions are cut to whole pixels and to the screen, and every pixel
of a region gets one vote.

* The consensus region (GUI-RC) is the largest 4-connected region whose pixels all hold the
  maximum vote; it is reported by its bounding box, as the reference evaluation does.
* The reward of sample ``i`` (GUI-RCPO) is ``sum(votes inside region_i) / (max_vote *
  area_i)``, 0 for an empty region: the mean vote density of the sample's region, relative to
  the best agreement anywhere.

The grid is kept compressed: the regions' edges cut the screen into at most (2G+1)^2 cells of
equal vote, so a 4K screen costs no more than a small one, and the results are exactly those
of a per-pixel grid (the tests check that against a brute-force numpy grid).

Checked against the reference code (ZJU-REAL/GUI-RCPO: ``VLM-R1/.../grpo_jsonl.py``
``voting_reward``, and ``GUI-RC/evaluation.py``). Differences:

* Point expansion: the paper's pseudo-code and the GUI-RC evaluation make a square of side
  ``alpha`` (default 50) around a point; the GUI-RCPO training code expands by ``alpha`` on
  each side (side ``2 * alpha``). Here the side is ``point_box_size`` (default 50, the paper);
  set 100 to match the training script's ``--point_expand_size 50``.
* The numbers are read from ``<answer>...</answer>`` when the answer has that block (a
  thought with numbers in it would otherwise make the reference's count of 2 or 4 fail), else
  from the whole text, with the reference's pattern (non-negative decimals).
* Coordinates may be pixels, fractions of the screen (InternVL-style) or thousandths (OS-Atlas,
  UGround-style); the reference switches on the model's name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from traject.rewards.base import GroupReward
from traject.types import RewardResult, Task, Trajectory

IntBox = tuple[int, int, int, int]
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


class RegionConsistencyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "region_consistency"
    point_box_size: float = Field(default=50.0, gt=0)
    coordinates: Literal["pixel", "normalized", "thousandths"] = "pixel"
    image_size_key: str = "image_size"
    answer_pattern: str | None = r"<answer>(.*?)</answer>"


def parse_region(text: str, config: RegionConsistencyConfig, size: tuple[int, int]) -> IntBox | None:
    """The pixel region an answer votes for, or None."""
    if config.answer_pattern:
        found = re.search(config.answer_pattern, text, re.DOTALL)
        if found:
            text = found.group(1)
    numbers = [float(n) for n in _NUMBER.findall(text)]
    w, h = size
    scale = {"pixel": (1.0, 1.0), "normalized": (w, h), "thousandths": (w / 1000, h / 1000)}[config.coordinates]
    if len(numbers) == 4:
        x1, y1, x2, y2 = numbers[0] * scale[0], numbers[1] * scale[1], numbers[2] * scale[0], numbers[3] * scale[1]
    elif len(numbers) == 2:
        x, y, half = numbers[0] * scale[0], numbers[1] * scale[1], config.point_box_size / 2
        x1, y1, x2, y2 = x - half, y - half, x + half, y + half
    else:
        return None
    return clip_box((int(x1), int(y1), int(x2), int(y2)), size)


def clip_box(box: IntBox, size: tuple[int, int]) -> IntBox | None:
    w, h = size
    x1, y1, x2, y2 = max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3])
    return (x1, y1, x2, y2) if x2 > x1 and y2 > y1 else None


class VoteGrid:
    """Votes of pixel regions on a ``size`` screen, compressed along the regions' edges."""

    def __init__(self, regions: Sequence[IntBox | None], size: tuple[int, int]) -> None:
        w, h = size
        boxes = [r for r in regions if r is not None]
        self.xs = np.array(sorted({0, w, *(b[0] for b in boxes), *(b[2] for b in boxes)}), dtype=np.int64)
        self.ys = np.array(sorted({0, h, *(b[1] for b in boxes), *(b[3] for b in boxes)}), dtype=np.int64)
        self.votes = np.zeros((len(self.ys) - 1, len(self.xs) - 1), dtype=np.int64)
        for b in boxes:
            i0, i1, j0, j1 = self._span(b)
            self.votes[j0:j1, i0:i1] += 1
        self.cell_area = np.outer(np.diff(self.ys), np.diff(self.xs))
        self.max_vote = int(self.votes.max()) if self.votes.size else 0

    def _span(self, b: IntBox) -> tuple[int, int, int, int]:
        i0, i1 = np.searchsorted(self.xs, [b[0], b[2]])
        j0, j1 = np.searchsorted(self.ys, [b[1], b[3]])
        return int(i0), int(i1), int(j0), int(j1)

    def votes_in(self, b: IntBox) -> int:
        i0, i1, j0, j1 = self._span(b)
        return int((self.votes[j0:j1, i0:i1] * self.cell_area[j0:j1, i0:i1]).sum())

    def consensus(self) -> tuple[IntBox, int] | None:
        """(bounding box, pixel area) of the largest 4-connected max-vote region; ties go to
        the region met first in raster order."""
        if self.max_vote == 0:
            return None
        mask = self.votes == self.max_vote
        seen = np.zeros_like(mask)
        rows, cols = mask.shape
        best: tuple[IntBox, int] | None = None
        for j in range(rows):
            for i in range(cols):
                if not mask[j, i] or seen[j, i]:
                    continue
                stack, cells = [(j, i)], []
                seen[j, i] = True
                while stack:
                    cj, ci = stack.pop()
                    cells.append((cj, ci))
                    for nj, ni in ((cj - 1, ci), (cj + 1, ci), (cj, ci - 1), (cj, ci + 1)):
                        if 0 <= nj < rows and 0 <= ni < cols and mask[nj, ni] and not seen[nj, ni]:
                            seen[nj, ni] = True
                            stack.append((nj, ni))
                size = int(sum(self.cell_area[cj, ci] for cj, ci in cells))
                if best is None or size > best[1]:
                    js = [c[0] for c in cells]
                    is_ = [c[1] for c in cells]
                    box = (int(self.xs[min(is_)]), int(self.ys[min(js)]),
                           int(self.xs[max(is_) + 1]), int(self.ys[max(js) + 1]))
                    best = (box, size)
        return best


def consistency_rewards(regions: Sequence[IntBox | None], size: tuple[int, int]) -> tuple[list[float], VoteGrid]:
    grid = VoteGrid(regions, size)
    out: list[float] = []
    for r in regions:
        if r is None or grid.max_vote == 0:
            out.append(0.0)
            continue
        a = (r[2] - r[0]) * (r[3] - r[1])
        out.append(grid.votes_in(r) / (grid.max_vote * a))
    return out, grid


def answer_text(traj: Trajectory) -> str:
    if traj.final_answer is not None:
        return traj.final_answer
    for m in reversed(traj.messages):
        if m.role == "assistant":
            return m.text
    return ""


class RegionConsistency(GroupReward):
    """GUI-RCPO's reward over the G samples of one task (needs ``task.data["image_size"]``)."""

    def __init__(self, config: RegionConsistencyConfig | None = None) -> None:
        self.config = config or RegionConsistencyConfig()
        self.name = self.config.name

    def screen_size(self, task: Task) -> tuple[int, int]:
        raw = task.data.get(self.config.image_size_key)
        if not (isinstance(raw, list | tuple) and len(raw) == 2 and all(isinstance(v, int | float) for v in raw)):
            raise ValueError(f"task {task.id!r}: task.data[{self.config.image_size_key!r}] must be the "
                             f"screen's [width, height] in pixels, got {raw!r}")
        return int(raw[0]), int(raw[1])

    async def score_group(self, trajs: list[Trajectory], task: Task) -> list[RewardResult]:
        size = self.screen_size(task)
        regions = [parse_region(answer_text(t), self.config, size) for t in trajs]
        rewards, grid = consistency_rewards(regions, size)
        consensus = grid.consensus()
        shared = {"max_vote": grid.max_vote, "group_size": len(trajs),
                  "consensus_region": list(consensus[0]) if consensus else None}
        return [RewardResult(total=r, components={self.name: r},
                             info={**shared, "region": list(reg) if reg else None})
                for r, reg in zip(rewards, regions, strict=True)]
