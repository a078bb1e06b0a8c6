"""Gated reward accumulation (G-RA), from "Stabilizing Long-term Multi-turn RL with Gated
Rewards" (Sun et al., 2025, arXiv:2508.10548).

Rewards come in priority order: ``levels = [(outcome, threshold_0), (step_reward_1,
threshold_1), ...]``. A level counts only when every higher-priority level met its threshold:

    gate_i  = all(r_j >= threshold_j for j < i)          (gate_0 = 1: the outcome always counts)
    total   = sum(gate_i * r_i)                          (the gated total, the training reward)
    ungated = sum(r_i)                                   (direct accumulation, "D-RA")

With two levels this is the paper's ``R = r_high + 1[r_high >= delta] * sum_t r_low_t``: an
outcome below its threshold gives exactly the outcome reward, so step rewards (format, valid
tool calls, edits made, tests run) can never pay for a failed episode. Both totals are recorded
(``components["gated_total"]`` and ``components["ungated_total"]``), so reward hacking by
step rewards shows up as a gap between them.

``per_step``: each level's ``per_step`` (a level without one contributes its total at the last
step), masked by its gate and summed. The last level's threshold is never read; pass None.

>>> import anyio
>>> from traject.rewards.combinators import Constant
>>> from traject.types import Task, Trajectory
>>> g = GatedAccumulation([(Constant(0.0, name="outcome"), 1.0), (Constant(0.3, name="steps"), None)])
>>> r = anyio.run(g.score, Trajectory(task_id="t"), Task(id="t"))
>>> r.total, r.components["ungated_total"]
(0.0, 0.3)
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from traject.rewards.base import Reward
from traject.rewards.combinators import first_failure, nest_components, score_all, unique_names
from traject.types import RewardResult, Task, Trajectory


class GateLevel(BaseModel):
    """One priority level: its reward, and the threshold it must reach to open lower levels."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    reward: Reward
    threshold: float | None = None
    name: str | None = None


def gates(values: Sequence[float], thresholds: Sequence[float | None]) -> list[bool]:
    """``gate_i`` for each level: every level above ``i`` reached its threshold. A missing
    threshold above the last level is an error (it would leave the gate undefined)."""
    out: list[bool] = []
    open_ = True
    for i, v in enumerate(values):
        out.append(open_)
        if i < len(values) - 1:
            th = thresholds[i]
            if th is None:
                raise ValueError(f"gate level {i} has no threshold but has levels below it")
            open_ = open_ and v >= th
    return out


class GatedAccumulation(Reward):
    """G-RA over ordered ``(reward, threshold)`` levels, highest priority first."""

    name = "gated"

    def __init__(self, levels: Sequence[GateLevel | tuple[Reward, float | None]], *, name: str = "gated") -> None:
        parsed = [lv if isinstance(lv, GateLevel) else GateLevel(reward=lv[0], threshold=lv[1]) for lv in levels]
        if not parsed:
            raise ValueError("GatedAccumulation needs at least one level")
        for i, lv in enumerate(parsed[:-1]):
            if lv.threshold is None:
                raise ValueError(f"gate level {i} ({lv.name or lv.reward.name}) needs a threshold: "
                                 "every level but the last gates the levels below it")
        self.levels = parsed
        self.names = unique_names([lv.reward for lv in parsed], [lv.name for lv in parsed])
        self.name = name

    async def score(self, traj: Trajectory, task: Task) -> RewardResult:
        results = await score_all([lv.reward for lv in self.levels], traj, task)
        if (failed := first_failure(self.names, results)) is not None:
            return failed
        values = [r.total for r in results]
        open_ = gates(values, [lv.threshold for lv in self.levels])
        gated = sum(v for v, g in zip(values, open_, strict=True) if g)
        ungated = sum(values)
        components: dict[str, float] = {}
        for name, r, g in zip(self.names, results, open_, strict=True):
            nest_components(name, r, components)
            components[f"{name}/gated"] = r.total if g else 0.0
        components["gated_total"] = gated
        components["ungated_total"] = ungated
        n_steps = max(len(traj.steps), *(len(r.per_step) for r in results), 1)
        per_step = [0.0] * n_steps
        for r, g in zip(results, open_, strict=True):
            if not g:
                continue
            if r.per_step:
                for i, v in enumerate(r.per_step):
                    per_step[i] += v
            else:
                per_step[-1] += r.total
        return RewardResult(
            total=gated,
            components=components,
            per_step=per_step,
            success=results[0].success,
            info={"gates_open": [name for name, g in zip(self.names, open_, strict=True) if g],
                  **{name: r.info for name, r in zip(self.names, results, strict=True) if r.info}},
        )
