"""The ``lookup`` env's task generator (compositional split), its one solver and the
imperfect demonstrator, run through the real env."""

from __future__ import annotations

import anyio
import pytest

import traject
from traject.agents.rollouts import Rollouts
from traject.agents.scripted import ScriptedPolicy
from traject.environments.builtin.lookup import demonstrator, held_out_pair, lookup_tasks, next_call, parse_order, solve

TASKS = {"items_per_order": 2, "max_quantity": 2, "max_price": 5, "quantity_words": True}


def _pairs(tasks):
    return {(item, qty) for t in tasks for item, qty in t.data["order"]}


def test_seen_and_unseen_splits_share_no_pairing_and_every_item_and_quantity_is_trained():
    train = lookup_tasks(split="train", n=400, combos="seen", **TASKS)
    test = lookup_tasks(split="test", n=200, combos="unseen", **TASKS)
    assert not any(held_out_pair(i, q) for i, q in _pairs(train))
    assert all(any(held_out_pair(i, q) for i, q in t.data["order"]) for t in test)
    unseen = {p for p in _pairs(test) if held_out_pair(*p)}
    assert unseen and unseen.isdisjoint(_pairs(train))
    # every item and every quantity of the held-out orders occurs in training, in other pairings
    assert {i for i, _ in _pairs(test)} <= {i for i, _ in _pairs(train)}
    assert {q for _, q in _pairs(test)} <= {q for _, q in _pairs(train)}
    assert lookup_tasks(split="test", n=5, combos="unseen", **TASKS) == test[:5]


def test_questions_parse_back_to_the_order_and_the_solver_computes_the_total():
    for task in lookup_tasks(n=20, seed=3, **TASKS):
        order = parse_order(task.prompt)
        assert [list(p) for p in order] == task.data["order"]
        prices = [str(task.data["prices"][item]) for item, _ in order]
        assert next_call(task.prompt, prices) == ("submit", {"answer": task.answer})
    with pytest.raises(ValueError, match="combos"):
        lookup_tasks(combos="some")


def _play(script, tasks):
    engine = Rollouts(ScriptedPolicy(script), lambda: traject.make("lookup", max_turns=4), group_size=1, seed=5)
    return anyio.run(engine.run, tasks)


def test_the_solver_solves_every_task_and_the_demonstrator_errs_in_ordinary_ways():
    tasks = lookup_tasks(split="train", n=120, combos="seen", **TASKS)
    assert all(t.success for t in _play(solve, tasks))
    demos = _play(demonstrator(arithmetic_error_rate=0.3, missed_lookup_rate=0.15, max_price=5), tasks)
    rate = sum(t.success for t in demos) / len(demos)
    assert 0.45 < rate < 0.8
    lookups = [sum(c.name == "lookup" for s in t.steps for c in s.action.tool_calls) for t in demos]
    assert set(lookups) == {1, 2}  # a missed lookup sometimes, never an extra one
    # every episode ends with a submitted number: no prose, no designed habit
    assert all(t.steps[-1].action.tool_calls[0].name == "submit" for t in demos)
    assert all(t.success for t, n in zip(demos, lookups, strict=True) if n == 2) is False  # wrong sums too
