"""Database state match (tau-bench style): the environment's state after the agent's actions,
hashed as canonical JSON, against the state after replaying the gold actions on a fresh copy.

Canonical JSON: keys sorted, no whitespace, UTF-8 kept, integral floats written as integers
(``1.0`` and ``1`` are the same state), tuples as lists. The hash is SHA-256 of that text.

Where the states come from:

* the agent's: the env records it while its data is still there, in the last step's
  ``info["db_state"]`` (the state itself) or ``info["db_state_hash"]`` (its hash), or in
  ``Trajectory.info`` under the same keys;
* the gold: ``task.data["gold_state_hash"]``, or ``replay_gold(task)``: a function (sync or
  async) the env supplies that applies the task's gold actions to a fresh copy of its data and
  returns the state. Replayed hashes are cached per task id.

When both full states are at hand, ``info["differences"]`` lists the paths that differ (the
first 20), which is what one wants to see when a state does not match.

>>> state_hash({"b": [1.0, 2], "a": "x"}) == state_hash({"a": "x", "b": [1, 2.0]})
True
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ConfigDict

from traject.rewards.base import Reward
from traject.types import RewardResult, Task, Trajectory

ReplayGold = Callable[[Task], Any | Awaitable[Any]]


def _canonical(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, BaseModel):
        return _canonical(value.model_dump(mode="json"))
    return value


def canonical_json(state: Any) -> str:
    return json.dumps(_canonical(state), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def state_hash(state: Any) -> str:
    return hashlib.sha256(canonical_json(state).encode()).hexdigest()


def differences(a: Any, b: Any, path: str = "$", limit: int = 20) -> list[str]:
    out: list[str] = []

    def walk(x: Any, y: Any, p: str) -> None:
        if len(out) >= limit:
            return
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y), key=str):
                if k not in x:
                    out.append(f"{p}.{k}: missing in agent state")
                elif k not in y:
                    out.append(f"{p}.{k}: not in gold state")
                else:
                    walk(x[k], y[k], f"{p}.{k}")
        elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for i, (u, v) in enumerate(zip(x, y, strict=True)):
                walk(u, v, f"{p}[{i}]")
        elif _canonical(x) != _canonical(y):
            out.append(f"{p}: {json.dumps(_canonical(x))[:80]} != {json.dumps(_canonical(y))[:80]}")

    walk(a, b, path)
    return out


class DBStateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "db_state_match"
    state_key: str = "db_state"
    hash_key: str = "db_state_hash"
    gold_hash_key: str = "gold_state_hash"


class DBStateMatch(Reward):
    def __init__(self, config: DBStateConfig | None = None, *, replay_gold: ReplayGold | None = None) -> None:
        self.config = config or DBStateConfig()
        self.replay_gold = replay_gold
        self.name = self.config.name
        self._gold: dict[str, tuple[str, Any]] = {}

    def _agent(self, traj: Trajectory) -> tuple[str | None, Any]:
        c = self.config
        sources = [s.info for s in reversed(traj.steps)] + [traj.info]
        for info in sources:
            if info.get(c.state_key) is not None:
                state = info[c.state_key]
                return state_hash(state), state
            if isinstance(info.get(c.hash_key), str):
                return str(info[c.hash_key]), None
        return None, None

    async def _gold_state(self, task: Task) -> tuple[str | None, Any]:
        given = task.data.get(self.config.gold_hash_key)
        if isinstance(given, str):
            return given, None
        if self.replay_gold is None:
            return None, None
        if task.id not in self._gold:
            state = self.replay_gold(task)
            if inspect.isawaitable(state):
                state = await state
            self._gold[task.id] = (state_hash(state), state)
        return self._gold[task.id]

    async def score(self, traj: Trajectory, task: Task) -> RewardResult:
        c = self.config
        agent_hash, agent_state = self._agent(traj)
        if agent_hash is None:
            return RewardResult(failed=True, error=f"no agent state recorded (info[{c.state_key!r}] or "
                                f"info[{c.hash_key!r}] of a step or of the trajectory)")
        gold_hash, gold_state = await self._gold_state(task)
        if gold_hash is None:
            return RewardResult(failed=True, error=f"task {task.id!r} gives no gold state: set "
                                f"task.data[{c.gold_hash_key!r}] or pass replay_gold=")
        ok = agent_hash == gold_hash
        info: dict[str, Any] = {"agent_hash": agent_hash, "gold_hash": gold_hash}
        if not ok and agent_state is not None and gold_state is not None:
            info["differences"] = differences(agent_state, gold_state)
        v = 1.0 if ok else 0.0
        return RewardResult(total=v, components={self.name: v}, success=ok, info=info)
