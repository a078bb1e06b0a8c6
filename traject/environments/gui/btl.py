"""GUI rewards over GUI trajectories: the page's own reward, BTL-UI against the page's target,
and region consistency for grounding tasks.

* :class:`PageTargetBTL` scores each step's Blink-Think-Link answer with
  :func:`traject.rewards.gui.btl_score` against the target the page named at that step
  (``core.setTarget``, recorded by the env in ``step.info["gui"]["target"]``): the target's box,
  the action it expects (``{"function": "click", "point_2d": centre}``) and the screen size.
  Only steps whose target expects a click or a double click are scored (a typed text or a drag
  has no reference text or path to compare with).
* :func:`gui_reward` combines the page reward and BTL-UI with weights (WeightedSum).
* Region consistency needs no adapter: on grounding tasks (``gui_tasks(grounding=True)``) the
  env ends after one action and makes its point the final answer (``"[x, y]"``), and the task
  carries ``image_size``; pass ``RegionConsistency()`` as the Rollouts' ``group_reward``.
"""

from __future__ import annotations

from typing import Any

from traject.environments.gui.page_reward import PageReward, RewardKind
from traject.rewards.base import Reward
from traject.rewards.combinators import WeightedSum
from traject.rewards.gui.btl import BTLConfig, BTLTarget, btl_score
from traject.types import RewardResult, Task, Trajectory

SCORED_ACTIONS = ("click", "double_click")


def step_target(info: dict[str, Any]) -> BTLTarget | None:
    gui = info.get("gui")
    if not isinstance(gui, dict) or not isinstance(gui.get("target"), dict):
        return None
    target, screen = gui["target"], gui.get("screen")
    if target.get("action") not in SCORED_ACTIONS or not isinstance(screen, list):
        return None
    x1, y1, x2, y2 = target["bbox"]
    return BTLTarget(bbox=(x1, y1, x2, y2),
                     action={"function": target["action"], "point_2d": [(x1 + x2) / 2, (y1 + y2) / 2]},
                     image_size=(float(screen[0]), float(screen[1])))


class PageTargetBTL(Reward):
    """BTL-UI (0.1 format + 0.3 blink + 0.6 link by default) per step against the page's
    target; ``total`` is the mean over the scored steps."""

    def __init__(self, config: BTLConfig | None = None) -> None:
        self.config = config or BTLConfig()
        self.name = self.config.name

    async def score(self, traj: Trajectory, task: Task) -> RewardResult:
        per_step: list[float] = []
        scores = []
        for step in traj.steps:
            target = step_target(step.info)
            if target is None:
                per_step.append(0.0)
                continue
            s = btl_score(step.action.text, target, self.config)
            scores.append(s)
            per_step.append(s.total)
        if not scores:
            return RewardResult(failed=True, error=f"task {task.id!r}: no step had a click target from the page "
                                "(core.setTarget), so BTL-UI has nothing to compare with")
        n = len(scores)
        total = sum(s.total for s in scores) / n
        return RewardResult(
            total=total,
            components={self.name: total, "format": sum(s.format for s in scores) / n,
                        "blink": sum(s.blink for s in scores) / n, "link": sum(s.link for s in scores) / n},
            per_step=per_step, success=all(s.link == 1.0 for s in scores),
            info={"scored_steps": n, "errors": [s.error for s in scores if s.error]},
        )


def gui_reward(*, page_weight: float = 1.0, btl_weight: float = 0.0, page_kind: RewardKind = "raw",
               btl: BTLConfig | None = None) -> Reward:
    """The page's reward, plus ``btl_weight`` times BTL-UI when that is not 0."""
    page = PageReward(kind=page_kind)
    if btl_weight == 0:
        return page
    return WeightedSum([(page, page_weight), (PageTargetBTL(btl), btl_weight)], name="gui")
