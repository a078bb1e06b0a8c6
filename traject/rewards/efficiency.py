"""Efficiency penalties: tokens, turns and tool calls, as components.

"Toward Efficient Agents" frames an agent's cost as ``alpha * tokens + tool-call cost + ...``
and asks for more success per unit of cost. This reward is that cost, negated: each part is
``-rate * max(0, used - free)``, capped at ``max_penalty`` per part, all off by default
(rate 0). Add it to an outcome reward with :class:`~traject.rewards.combinators.WeightedSum`;
the components (``tokens``, ``turns``, ``tool_calls``, and the raw counts ``n_tokens``,
``n_turns``, ``n_tool_calls``) land in the result under the term's name, so success can be
plotted against cost.

Tokens are the policy's completion tokens (``Usage.completion_tokens``) by default, or prompt
plus completion; turns are env steps; a tool may cost more than others (``tool_costs``).

>>> import anyio
>>> from traject.types import Task, Trajectory, Usage
>>> r = Efficiency(EfficiencyConfig(token_rate=0.001, free_tokens=100))
>>> res = anyio.run(r.score, Trajectory(task_id="t", usage=Usage(completion_tokens=600)), Task(id="t"))
>>> res.total, res.components["n_tokens"]
(-0.5, 600.0)
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from traject.rewards.base import Reward
from traject.types import RewardResult, Task, Trajectory


class EfficiencyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "efficiency"
    tokens: Literal["completion", "total"] = "completion"
    token_rate: float = Field(default=0.0, ge=0)
    free_tokens: int = Field(default=0, ge=0)
    turn_rate: float = Field(default=0.0, ge=0)
    free_turns: int = Field(default=0, ge=0)
    tool_call_rate: float = Field(default=0.0, ge=0)
    free_tool_calls: int = Field(default=0, ge=0)
    tool_costs: dict[str, float] = Field(default_factory=dict)   # per tool name, instead of the rate
    max_penalty: float | None = Field(default=None, ge=0)        # cap per part


class Efficiency(Reward):
    def __init__(self, config: EfficiencyConfig | None = None) -> None:
        self.config = config or EfficiencyConfig()
        self.name = self.config.name

    def _cap(self, penalty: float) -> float:
        cap = self.config.max_penalty
        return min(penalty, cap) if cap is not None else penalty

    async def score(self, traj: Trajectory, task: Task) -> RewardResult:
        c = self.config
        u = traj.usage
        n_tokens = u.completion_tokens + (u.prompt_tokens if c.tokens == "total" else 0)
        n_turns = len(traj.steps)
        calls = [call.name for step in traj.steps for call in step.action.tool_calls]
        n_calls = len(calls) if calls or not u.tool_calls else u.tool_calls
        tokens = -self._cap(c.token_rate * max(0, n_tokens - c.free_tokens))
        turns = -self._cap(c.turn_rate * max(0, n_turns - c.free_turns))
        if c.tool_costs:
            billable = calls[c.free_tool_calls:]
            tool_cost = sum(c.tool_costs.get(name, c.tool_call_rate) for name in billable)
        else:
            tool_cost = c.tool_call_rate * max(0, n_calls - c.free_tool_calls)
        tool_calls = -self._cap(tool_cost)
        total = tokens + turns + tool_calls
        return RewardResult(
            total=total,
            components={self.name: total, "tokens": tokens, "turns": turns, "tool_calls": tool_calls,
                        "n_tokens": float(n_tokens), "n_turns": float(n_turns), "n_tool_calls": float(n_calls)},
        )
