"""WeightedSum: several rewards as one, ``total = sum(w_i * r_i)``.

The terms are scored concurrently. Each term's total lands in ``components[name]`` and its own
components under ``components["name/component"]``, so a plot of success against cost (see
:mod:`traject.rewards.efficiency`) reads them straight off the result. A term that failed
fails the sum (a failed reward is left out of its group, never scored 0).

>>> import anyio
>>> from traject.rewards import AnswerMatch
>>> from traject.types import Task, Trajectory
>>> r = WeightedSum([(AnswerMatch(), 0.7), (Constant(1.0, name="bonus"), 0.3)])
>>> res = anyio.run(r.score, Trajectory(task_id="t", final_answer="4"), Task(id="t", answer=4))
>>> round(res.total, 6), res.components["answer_match"], res.components["bonus"]
(1.0, 1.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio
from pydantic import BaseModel, ConfigDict

from traject.rewards.base import Reward
from traject.types import RewardResult, Task, Trajectory


class Constant(Reward):
    """A fixed reward; useful as a bias term and in tests."""

    def __init__(self, value: float, *, name: str = "constant") -> None:
        self.value = value
        self.name = name

    async def score(self, traj: Trajectory, task: Task) -> RewardResult:
        return RewardResult(total=self.value, components={self.name: self.value})


class Term(BaseModel):
    """One weighted term of a WeightedSum."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    reward: Reward
    weight: float = 1.0
    name: str | None = None


def unique_names(rewards: Sequence[Reward], names: Sequence[str | None]) -> list[str]:
    """Each reward's name (explicit, else ``reward.name``), made unique with ``#2``, ``#3``."""
    out: list[str] = []
    seen: dict[str, int] = {}
    for reward, name in zip(rewards, names, strict=True):
        base = name or getattr(reward, "name", None) or type(reward).__name__
        seen[base] = seen.get(base, 0) + 1
        out.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    return out


async def score_all(rewards: Sequence[Reward], traj: Trajectory, task: Task) -> list[RewardResult]:
    """Score every reward concurrently; a reward that raises becomes a failed result."""
    results: list[RewardResult | None] = [None] * len(rewards)

    async def one(i: int) -> None:
        try:
            results[i] = await rewards[i].score(traj, task)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:  # noqa: BLE001 - a reward's failure is a failed result
            results[i] = RewardResult(failed=True, error=f"{type(exc).__name__}: {exc}")

    async with anyio.create_task_group() as tg:
        for i in range(len(rewards)):
            tg.start_soon(one, i)
    return [r for r in results if r is not None]


def weighted_lists(lists: Sequence[Sequence[float]], weights: Sequence[float]) -> list[float]:
    """Element-wise ``sum(w * list)``, shorter lists padded with 0; empty lists are skipped."""
    present = [(lst, w) for lst, w in zip(lists, weights, strict=True) if lst]
    if not present:
        return []
    n = max(len(lst) for lst, _ in present)
    out = [0.0] * n
    for lst, w in present:
        for i, v in enumerate(lst):
            out[i] += w * v
    return out


def merge_success(results: Sequence[RewardResult]) -> bool | None:
    known = [r.success for r in results if r.success is not None]
    return all(known) if known else None


def nest_components(name: str, result: RewardResult, into: dict[str, float]) -> None:
    into[name] = result.total
    for k, v in result.components.items():
        if k != name:
            into[f"{name}/{k}"] = v


def first_failure(names: Sequence[str], results: Sequence[RewardResult]) -> RewardResult | None:
    for name, r in zip(names, results, strict=True):
        if r.failed:
            return RewardResult(failed=True, error=f"{name}: {r.error or 'failed'}",
                                info={"failed_term": name})
    return None


class WeightedSum(Reward):
    """``total = sum(weight_i * total_i)``; per-step and per-turn lists are summed the same way."""

    name = "weighted_sum"

    def __init__(self, terms: Sequence[Term | tuple[Reward, float] | Reward], *, name: str = "weighted_sum") -> None:
        parsed: list[Term] = []
        for t in terms:
            if isinstance(t, Term):
                parsed.append(t)
            elif isinstance(t, Reward):
                parsed.append(Term(reward=t))
            else:
                reward, weight = t
                parsed.append(Term(reward=reward, weight=weight))
        if not parsed:
            raise ValueError("WeightedSum needs at least one term")
        self.terms = parsed
        self.names = unique_names([t.reward for t in parsed], [t.name for t in parsed])
        self.name = name

    async def score(self, traj: Trajectory, task: Task) -> RewardResult:
        results = await score_all([t.reward for t in self.terms], traj, task)
        if (failed := first_failure(self.names, results)) is not None:
            return failed
        weights = [t.weight for t in self.terms]
        components: dict[str, float] = {}
        for name, r in zip(self.names, results, strict=True):
            nest_components(name, r, components)
        return RewardResult(
            total=sum(w * r.total for w, r in zip(weights, results, strict=True)),
            components=components,
            per_step=weighted_lists([r.per_step for r in results], weights),
            per_turn=weighted_lists([r.per_turn for r in results], weights),
            success=merge_success(results),
            info={name: r.info for name, r in zip(self.names, results, strict=True) if r.info},
        )
