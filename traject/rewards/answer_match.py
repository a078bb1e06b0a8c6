"""Outcome reward on the trajectory's final answer."""

from __future__ import annotations

from collections.abc import Callable

from traject.rewards.base import Reward
from traject.types import RewardResult, Task, Trajectory


def normalize_number(text: str) -> str:
    t = text.strip().rstrip(".").replace(",", "")
    try:
        value = float(t)
    except ValueError:
        return " ".join(t.lower().split())
    return str(int(value)) if value.is_integer() else repr(value)


class AnswerMatch(Reward):
    """1.0 when ``final_answer`` equals ``task.answer`` after normalisation, else 0.0.

    >>> import anyio
    >>> from traject.types import Task, Trajectory
    >>> t = Task(id="t", answer=42)
    >>> anyio.run(AnswerMatch().score, Trajectory(task_id="t", final_answer="42.0"), t).total
    1.0
    """

    name = "answer_match"

    def __init__(self, normalize: Callable[[str], str] = normalize_number) -> None:
        self.normalize = normalize

    async def score(self, traj: Trajectory, task: Task) -> RewardResult:
        if traj.final_answer is None or task.answer is None:
            ok = False
        else:
            ok = self.normalize(str(traj.final_answer)) == self.normalize(str(task.answer))
        value = 1.0 if ok else 0.0
        return RewardResult(total=value, components={self.name: value}, success=ok)
