"""WeightedSum and gated accumulation (G-RA), worked by hand."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from traject.rewards.base import Reward
from traject.rewards.combinators import Constant, WeightedSum
from traject.rewards.gated import GatedAccumulation, GateLevel
from traject.rewards.step import EnvStepRewards, ToolCallValidity, ToolCallValidityConfig
from traject.types import Message, RewardResult, Step, Task, ToolResult, Trajectory

TASK = Task(id="t")


class Fixed(Reward):
    def __init__(self, total, *, name, per_step=(), failed=False, success=None):
        self.total, self.name, self.per_step, self.failed, self.success = total, name, list(per_step), failed, success

    async def score(self, traj, task):
        if self.failed:
            return RewardResult(failed=True, error="judge garbage")
        return RewardResult(total=self.total, components={self.name: self.total, "detail": 7.0},
                            per_step=self.per_step, success=self.success)


def traj_with_steps(rewards, errors=()):
    steps = []
    for i, r in enumerate(rewards):
        results = [ToolResult(call_id=f"c{i}", name="t", content="ok")]
        if i in errors:
            results.append(ToolResult(call_id=f"e{i}", name="t", content="Error", is_error=True, error_kind="arguments"))
        steps.append(Step(index=i, action=Message.assistant("a"), reward=r, tool_results=results))
    return Trajectory(task_id="t", steps=steps)


def run(reward, traj=None):
    return anyio.run(reward.score, traj or Trajectory(task_id="t"), TASK)


def test_weighted_sum_by_hand():
    r = run(WeightedSum([(Fixed(1.0, name="a", per_step=[0, 1], success=True), 0.5),
                         (Fixed(0.4, name="b", per_step=[1.0]), 2.0),
                         (Fixed(0.3, name="a"), -1.0)]))
    # 0.5*1 + 2*0.4 - 0.3 = 1.0
    assert r.total == pytest.approx(1.0)
    assert r.components["a"] == 1.0 and r.components["a#2"] == 0.3 and r.components["b"] == 0.4
    assert r.components["a/detail"] == 7.0
    assert r.per_step == pytest.approx([0 * 0.5 + 2.0 * 1.0, 0.5])
    assert r.success is True


def test_weighted_sum_fails_when_a_term_fails():
    r = run(WeightedSum([Fixed(1.0, name="a"), Fixed(0.0, name="judge", failed=True)]))
    assert r.failed and "judge" in r.error


def test_gated_two_levels_paper_formula():
    # outcome 1.0 >= 0.5: R = 1.0 + (0.1 + 0.2)
    levels = [(Fixed(1.0, name="outcome"), 0.5), (Fixed(0.3, name="steps", per_step=[0.1, 0.2]), None)]
    r = run(GatedAccumulation(levels), traj_with_steps([0, 0]))
    assert r.total == pytest.approx(1.3)
    assert r.components["gated_total"] == pytest.approx(1.3) == r.components["ungated_total"]
    assert r.per_step == pytest.approx([0.1, 1.2])
    # outcome 0.0 < 0.5: exactly the outcome reward; ungated shows what hacking would earn
    levels = [(Fixed(0.0, name="outcome"), 0.5), (Fixed(0.3, name="steps", per_step=[0.1, 0.2]), None)]
    r = run(GatedAccumulation(levels), traj_with_steps([0, 0]))
    assert r.total == 0.0
    assert r.components["ungated_total"] == pytest.approx(0.3)
    assert r.components["steps/gated"] == 0.0 and r.components["steps"] == 0.3
    assert r.per_step == [0.0, 0.0]


def test_gated_three_levels_priorities():
    a, b, c = Fixed(1.0, name="outcome"), Fixed(0.2, name="format"), Fixed(0.5, name="tools")
    # outcome passes, format 0.2 < 0.5 fails: tools gated off
    r = run(GatedAccumulation([GateLevel(reward=a, threshold=1.0), GateLevel(reward=b, threshold=0.5),
                               GateLevel(reward=c)]))
    assert r.total == pytest.approx(1.2)
    assert r.info["gates_open"] == ["outcome", "format"]
    # format passes its threshold: everything counts
    r = run(GatedAccumulation([(a, 1.0), (b, 0.2), (c, None)]))
    assert r.total == pytest.approx(1.7)


def test_gated_needs_thresholds_above_the_last_level():
    with pytest.raises(ValueError, match="needs a threshold"):
        GatedAccumulation([(Constant(1.0), None), (Constant(0.1), None)])


def test_step_rewards():
    traj = traj_with_steps([0.5, 0.0, 0.25], errors={1})
    r = run(EnvStepRewards(scale=2.0), traj)
    assert r.per_step == [1.0, 0.0, 0.5] and r.total == 1.5
    r = run(ToolCallValidity(ToolCallValidityConfig(reward_per_valid_call=0.1, penalty_per_invalid_call=0.2)), traj)
    assert r.per_step == pytest.approx([0.1, -0.1, 0.1])
    assert r.components["invalid_calls"] == 1.0


@settings(max_examples=60, deadline=None)
@given(outcome=st.floats(-1, 1), threshold=st.floats(-1, 1),
       steps=st.lists(st.floats(-1, 1), min_size=1, max_size=6))
def test_property_gate_below_threshold_gives_exactly_the_outcome(outcome, threshold, steps):
    g = GatedAccumulation([(Constant(outcome, name="outcome"), threshold),
                           (EnvStepRewards(), None)])
    r = run(g, traj_with_steps(steps))
    if outcome < threshold:
        assert r.total == outcome
    else:
        assert r.total == pytest.approx(outcome + sum(steps))
    assert r.components["ungated_total"] == pytest.approx(outcome + sum(steps))
    assert sum(r.per_step) == pytest.approx(r.total)
