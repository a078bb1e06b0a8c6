"""PageReward: the reward the task page gave itself, read from the trajectory.

The GUI env records the page's state (``WOB_DONE_GLOBAL``, ``WOB_RAW_REWARD_GLOBAL``,
``WOB_REWARD_GLOBAL``) in every step's ``info["gui"]["page"]``; this reward reads the last one.
"""

from __future__ import annotations

from typing import Literal

from traject.rewards.base import Reward
from traject.types import RewardResult, Task, Trajectory

RewardKind = Literal["raw", "scaled", "binary"]


def last_page_state(traj: Trajectory) -> dict | None:
    for step in reversed(traj.steps):
        gui = step.info.get("gui")
        if isinstance(gui, dict) and isinstance(gui.get("page"), dict):
            return gui["page"]
    return None


class PageReward(Reward):
    """``raw``: the page's reward as given (MiniWoB: 1 success, -1 failure); ``scaled``: the same
    scaled by time where the page asked for it; ``binary``: 1 when the raw reward is positive,
    else 0. An episode the page did not end (max turns, ``done`` on a page with no answer
    check) scores ``unfinished`` (0 by default)."""

    name = "page"

    def __init__(self, kind: RewardKind = "raw", unfinished: float = 0.0) -> None:
        if kind not in ("raw", "scaled", "binary"):
            raise ValueError(f"PageReward kind must be raw, scaled or binary, not {kind!r}")
        self.kind = kind
        self.unfinished = unfinished

    async def score(self, traj: Trajectory, task: Task) -> RewardResult:
        state = last_page_state(traj)
        if state is None or not state.get("done"):
            return RewardResult(total=self.unfinished, components={self.name: self.unfinished}, success=False,
                                info={"page_done": False})
        raw = float(state.get("raw_reward") or 0.0)
        if self.kind == "raw":
            value = raw
        elif self.kind == "scaled":
            value = float(state.get("reward") or 0.0)
        else:
            value = 1.0 if raw > 0 else 0.0
        return RewardResult(total=value, components={self.name: value}, success=raw > 0,
                            info={"page_done": True, "raw_reward": raw, "reason": state.get("reason")})
