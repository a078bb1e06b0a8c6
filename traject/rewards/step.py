"""Step-level (immediate) rewards: the dense signals G-RA gates behind an outcome.

* :class:`EnvStepRewards` sums what the env gave per step (``Step.reward``: tool rewards,
  an edit made, tests run ...).
* :class:`ToolCallValidity` pays for tool calls that ran without an error and optionally
  charges for those that did not (a botched call, an unknown tool, bad arguments ...).

Both fill ``per_step`` (one entry per env step), so gated accumulation can place them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from traject.rewards.base import Reward
from traject.types import RewardResult, Task, Trajectory


class EnvStepRewards(Reward):
    """``total = scale * sum(step.reward)``, ``per_step`` the scaled step rewards."""

    name = "env_steps"

    def __init__(self, scale: float = 1.0, *, name: str = "env_steps") -> None:
        self.scale = scale
        self.name = name

    async def score(self, traj: Trajectory, task: Task) -> RewardResult:
        per_step = [self.scale * s.reward for s in traj.steps]
        total = sum(per_step)
        return RewardResult(total=total, components={self.name: total}, per_step=per_step)


class ToolCallValidityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reward_per_valid_call: float = 0.1
    penalty_per_invalid_call: float = 0.0
    # None: any error result counts as invalid; else only these ToolResult.error_kind values.
    invalid_kinds: list[str] | None = None
    max_total: float | None = None


class ToolCallValidity(Reward):
    name = "tool_call_validity"

    def __init__(self, config: ToolCallValidityConfig | None = None, *, name: str = "tool_call_validity") -> None:
        self.config = config or ToolCallValidityConfig()
        self.name = name

    def _invalid(self, is_error: bool, kind: str | None) -> bool:
        if not is_error:
            return False
        kinds = self.config.invalid_kinds
        return kinds is None or (kind is not None and kind in kinds)

    async def score(self, traj: Trajectory, task: Task) -> RewardResult:
        c = self.config
        per_step: list[float] = []
        valid = invalid = 0
        for step in traj.steps:
            bad = sum(1 for r in step.tool_results if self._invalid(r.is_error, r.error_kind))
            good = len(step.tool_results) - bad
            valid += good
            invalid += bad
            per_step.append(good * c.reward_per_valid_call - bad * c.penalty_per_invalid_call)
        total = sum(per_step)
        if c.max_total is not None and total > c.max_total:
            scale = c.max_total / total
            per_step = [v * scale for v in per_step]
            total = c.max_total
        return RewardResult(total=total, components={self.name: total, "valid_calls": float(valid),
                                                     "invalid_calls": float(invalid)}, per_step=per_step)
