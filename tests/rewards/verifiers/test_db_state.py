"""DB state match: the agent's state vs the gold actions replayed on a fresh copy."""

from __future__ import annotations

import copy

import anyio
import pytest

from traject.rewards.verifiers import DBStateMatch, canonical_json, state_hash
from traject.types import Message, Step, Task, Trajectory

SEED = {"users": {"u1": {"name": "Ana", "balance": 100.0}}, "orders": []}


def apply(state, action):
    """A tiny airline-style state machine: the env's tools, as pure functions."""
    kind, args = action["name"], action["arguments"]
    if kind == "pay":
        state["users"][args["user"]]["balance"] -= args["amount"]
    elif kind == "order":
        state["orders"].append({"user": args["user"], "item": args["item"]})
    return state


GOLD = [{"name": "order", "arguments": {"user": "u1", "item": "seat 3A"}},
        {"name": "pay", "arguments": {"user": "u1", "amount": 40}}]


def replay(task: Task):
    state = copy.deepcopy(SEED)
    for a in task.data["gold_actions"]:
        apply(state, a)
    return state


def agent_traj(actions) -> Trajectory:
    state = copy.deepcopy(SEED)
    for a in actions:
        apply(state, a)
    return Trajectory(task_id="db", steps=[Step(index=0, action=Message.assistant("ok"), info={"db_state": state})])


TASK = Task(id="db", data={"gold_actions": GOLD})


def test_canonical_json():
    assert canonical_json({"b": 1.0, "a": [2.0, "é"]}) == '{"a":[2,"é"],"b":1}'
    assert state_hash({"x": (1, 2)}) == state_hash({"x": [1.0, 2]})
    assert state_hash({"x": 1}) != state_hash({"x": 1.5})


def test_same_actions_in_another_order_match():
    reward = DBStateMatch(replay_gold=replay)
    r = anyio.run(reward.score, agent_traj(list(reversed(GOLD))), TASK)
    assert r.total == 1.0 and r.success


def test_wrong_state_lists_the_differences():
    wrong = [GOLD[0], {"name": "pay", "arguments": {"user": "u1", "amount": 4}}]
    r = anyio.run(DBStateMatch(replay_gold=replay).score, agent_traj(wrong), TASK)
    assert r.total == 0.0
    assert r.info["differences"] == ["$.users.u1.balance: 96 != 60"]


def test_async_replay_cached_and_precomputed_hash():
    calls = []

    async def areplay(task):
        calls.append(task.id)
        return replay(task)

    reward = DBStateMatch(replay_gold=areplay)
    for _ in range(3):
        assert anyio.run(reward.score, agent_traj(GOLD), TASK).total == 1.0
    assert calls == ["db"]
    hashed = Task(id="h", data={"gold_state_hash": state_hash(replay(TASK))})
    traj = Trajectory(task_id="h", info={"db_state_hash": state_hash(replay(TASK))})
    assert anyio.run(DBStateMatch().score, traj, hashed).total == 1.0


def test_missing_states_fail_clearly():
    r = anyio.run(DBStateMatch(replay_gold=replay).score, Trajectory(task_id="db"), TASK)
    assert r.failed and "no agent state" in r.error
    r = anyio.run(DBStateMatch().score, agent_traj(GOLD), TASK)
    assert r.failed and "gold_state_hash" in r.error
