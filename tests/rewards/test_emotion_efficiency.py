"""RLVER emotion reward and efficiency penalties: worked examples."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from traject.rewards.combinators import WeightedSum
from traject.rewards.efficiency import Efficiency, EfficiencyConfig
from traject.rewards.emotion import EmotionConfig, EmotionReward
from traject.rewards.answer_match import AnswerMatch
from traject.types import Message, Step, Task, ToolCall, Trajectory, Usage

TASK = Task(id="e")


def dialogue(trace, reasons=None, done=None):
    """A user who starts at trace[0] and reacts to each agent reply (steps)."""
    steps = []
    for k, e in enumerate(trace[1:]):
        state = {"emotion": e, "emotion_trace": trace[: k + 2]}
        if reasons:
            state["reasons"] = reasons[: k + 1]
        if done and k == len(trace) - 2:
            state["done_reason"] = done
        steps.append(Step(index=k, action=Message.assistant(f"reply {k}"), info={"user_state": state}))
    return Trajectory(task_id="e", steps=steps)


def test_emotion_worked_example():
    # start 50; after the agent's replies: 60, 45, 80. reward = max(80/100, 0) = 0.8
    r = anyio.run(EmotionReward().score, dialogue([50, 60, 45, 80], reasons=["kind", "dismissive", "helpful"]), TASK)
    assert r.total == pytest.approx(0.8)
    assert r.per_turn == pytest.approx([0.6, 0.45, 0.8])
    assert r.components["emotion_change"] == pytest.approx(30) and r.success is False
    assert r.info["emotion_trace"] == [50, 60, 45, 80] and r.info["reasons"][1] == "dismissive"


def test_emotion_floor_ceiling_and_success():
    assert anyio.run(EmotionReward().score, dialogue([20, -10]), TASK).total == 0.0     # max(-0.1, 0)
    top = anyio.run(EmotionReward().score, dialogue([90, 100], done="emotion_high"), TASK)
    assert top.total == 1.0 and top.success and top.info["done_reason"] == "emotion_high"
    assert anyio.run(EmotionReward(EmotionConfig(success_threshold=None)).score, dialogue([1, 2]), TASK).success is None


def test_emotion_reads_the_last_state_and_fails_without_one():
    traj = dialogue([50, 70])
    traj.steps.append(Step(index=1, action=Message.assistant("bye")))        # a step without user reaction
    assert anyio.run(EmotionReward().score, traj, TASK).total == pytest.approx(0.7)
    r = anyio.run(EmotionReward().score, Trajectory(task_id="e", steps=[Step(index=0, action=Message.assistant("x"))]), TASK)
    assert r.failed and "user_state" in r.error
    bad = Trajectory(task_id="e", steps=[Step(index=0, action=Message.assistant("x"), info={"user_state": {"mood": 3}})])
    assert anyio.run(EmotionReward().score, bad, TASK).failed


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-50, 150, allow_nan=False), min_size=2, max_size=6))
def test_property_emotion_total_in_unit_range(trace):
    r = anyio.run(EmotionReward().score, dialogue(trace), TASK)
    assert 0.0 <= r.total <= 1.0
    assert r.total == pytest.approx(min(max(trace[-1] / 100, 0.0), 1.0))


def tool_traj():
    calls = [[ToolCall(name="search", arguments={}), ToolCall(name="search", arguments={})],
             [ToolCall(name="browse", arguments={})], []]
    steps = [Step(index=i, action=Message.assistant("", tool_calls=c)) for i, c in enumerate(calls)]
    return Trajectory(task_id="e", steps=steps, final_answer="42",
                      usage=Usage(prompt_tokens=3000, completion_tokens=1200, tool_calls=3))


def test_efficiency_worked_example():
    cfg = EfficiencyConfig(token_rate=1e-4, free_tokens=200, turn_rate=0.05, free_turns=1,
                           tool_call_rate=0.02, tool_costs={"browse": 0.1})
    r = anyio.run(Efficiency(cfg).score, tool_traj(), TASK)
    # tokens: 1e-4 * (1200 - 200) = 0.1; turns: 0.05 * (3 - 1) = 0.1; tools: 0.02 + 0.02 + 0.1 = 0.14
    assert r.components["tokens"] == pytest.approx(-0.1)
    assert r.components["turns"] == pytest.approx(-0.1)
    assert r.components["tool_calls"] == pytest.approx(-0.14)
    assert r.total == pytest.approx(-0.34)
    assert (r.components["n_tokens"], r.components["n_turns"], r.components["n_tool_calls"]) == (1200, 3, 3)
    capped = anyio.run(Efficiency(EfficiencyConfig(tokens="total", token_rate=1e-3, max_penalty=0.5)).score,
                       tool_traj(), TASK)
    assert capped.total == pytest.approx(-0.5)                     # 1e-3 * 4200 = 4.2, capped
    assert anyio.run(Efficiency().score, tool_traj(), TASK).total == 0.0    # all off by default


def test_success_against_cost_components_in_a_weighted_sum():
    r = anyio.run(WeightedSum([AnswerMatch(), Efficiency(EfficiencyConfig(turn_rate=0.1))]).score, tool_traj(),
                  Task(id="e", answer=42))
    assert r.total == pytest.approx(1.0 - 0.3)
    assert r.components["answer_match"] == 1.0 and r.components["efficiency/turns"] == pytest.approx(-0.3)
    assert r.components["efficiency/n_tokens"] == 1200
