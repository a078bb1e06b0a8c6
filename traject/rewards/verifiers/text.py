"""Normalised exact match and token F1, with SQuAD's normalisation (lower case, punctuation
and the articles a/an/the removed, whitespace collapsed). With several gold answers the best
one counts.

>>> normalize_answer("The  Eiffel-Tower!")
'eiffeltower'
>>> round(token_f1("the cat sat on the mat", "a cat on a mat"), 4)
0.8571
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from traject.rewards.base import Reward
from traject.rewards.verifiers._answer import agent_answer
from traject.types import RewardResult, Task, Trajectory

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(pred: str, gold: str) -> bool:
    return normalize_answer(pred) == normalize_answer(gold)


def token_f1(pred: str, gold: str) -> float:
    p, g = normalize_answer(pred).split(), normalize_answer(gold).split()
    if not p or not g:
        return float(p == g)
    common = Counter(p) & Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def gold_answers(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [str(value)]


class TextMatchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer_pattern: str | None = r"<answer>(.*?)</answer>"
    f1_success_threshold: float = 1.0


class _TextReward(Reward):
    metric: str

    def __init__(self, config: TextMatchConfig | None = None, *, name: str | None = None) -> None:
        self.config = config or TextMatchConfig()
        self.name = name or self.metric

    def value(self, pred: str, golds: Sequence[str]) -> float:
        raise NotImplementedError

    async def score(self, traj: Trajectory, task: Task) -> RewardResult:
        golds = gold_answers(task.answer)
        if not golds:
            return RewardResult(failed=True, error=f"task {task.id!r} has no answer to match against")
        pred = agent_answer(traj, self.config.answer_pattern)
        v = 0.0 if pred is None else self.value(pred, golds)
        return RewardResult(total=v, components={self.name: v}, success=v >= self._success_at(),
                            info={"prediction": pred})

    def _success_at(self) -> float:
        return 1.0


class ExactMatch(_TextReward):
    metric = "exact_match"

    def value(self, pred: str, golds: Sequence[str]) -> float:
        return float(any(exact_match(pred, g) for g in golds))


class TokenF1(_TextReward):
    metric = "token_f1"

    def value(self, pred: str, golds: Sequence[str]) -> float:
        return max(token_f1(pred, g) for g in golds)

    def _success_at(self) -> float:
        return self.config.f1_success_threshold
