"""The ``search`` env: answer a question from a local document collection.

Tools: ``search(query, k)`` (BM25 over the corpus), ``open(doc_id)`` and ``submit(answer)``;
a plain-text reply is taken as the answer too. Reward: exact match and F1 of the answer
against the gold answers (an LLM judge can be added).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from traject.environments.search.loaders import builtin_search_tasks, load_hotpotqa, load_nq_open
from traject.environments.search.tools import SearchToolset
from traject.environments.tool_env import ToolEnv
from traject.types import Task

if TYPE_CHECKING:
    from traject.rewards.base import Reward

SYSTEM_PROMPT = (
    "You answer questions from a document collection you can search. The answer may need facts from "
    "more than one document: search, open the documents that look useful, and follow the clues. When you "
    "know the answer, call `submit` with a short answer (a name, a place, a number)."
)


def default_search_reward(metric: str = "exact_match", *, judge_base_url: str | None = None,
                          judge_model: str | None = None) -> Reward:
    """Exact match and token F1 against the gold answers, both in ``components``, and with a judge
    endpoint an LLM judge of equivalence too; ``metric`` picks which one is the total."""
    from traject.rewards.combinators import WeightedSum
    from traject.rewards.verifiers.text import ExactMatch, TokenF1

    terms: list[tuple[Reward, float]] = [(ExactMatch(), 0.0), (TokenF1(), 0.0)]
    if judge_base_url:
        # The rewards library's rubric judge, on the rubric each QA task carries (its gold answers).
        from traject.rewards.judge import JudgeConfig
        from traject.rewards.judge_reward import RubricJudge, RubricJudgeConfig

        terms.append((RubricJudge(JudgeConfig(base_url=judge_base_url, model=judge_model or "judge"),
                                  RubricJudgeConfig(name="judge", rubric_key="rubric", min_score=0, max_score=1)), 0.0))
    names = {"exact_match": 0, "token_f1": 1, "judge": 2}
    if metric not in names or names[metric] >= len(terms):
        raise ValueError(f"unknown metric {metric!r}; use 'exact_match', 'token_f1', or 'judge' (with judge_base_url=)")
    reward, _ = terms[names[metric]]
    terms[names[metric]] = (reward, 1.0)
    return WeightedSum(terms, name="qa")


def make_search_env(*, max_turns: int = 10, max_k: int = 10, open_chars: int = 4000, tool_timeout_s: float = 30.0,
                    reward: Reward | None = None, metric: str | None = None, judge_base_url: str | None = None,
                    judge_model: str | None = None, system_prompt: str = SYSTEM_PROMPT) -> ToolEnv:
    """``metric``: the total is ``"exact_match"`` (default), ``"token_f1"``, or ``"judge"`` (the default
    when ``judge_base_url`` is given)."""
    from traject.environments.search.corpus import require_bm25s

    require_bm25s()
    if reward is None:
        metric = metric or ("judge" if judge_base_url else "exact_match")
        reward = default_search_reward(metric, judge_base_url=judge_base_url, judge_model=judge_model)
    return ToolEnv([SearchToolset(max_k=max_k, open_chars=open_chars)], name="search", system_prompt=system_prompt,
                   max_turns=max_turns, tool_timeout_s=tool_timeout_s, reward=reward)


def search_tasks(split: str = "test", n: int | None = None, seed: int = 0, path: str | Path | None = None,
                 corpus: str | Path | None = None, format: str | None = None, **_: Any) -> list[Task]:
    """Built-in tasks, or questions at ``path``: ``format="nq_open"`` or ``"hotpotqa"`` (guessed from the
    records when not given)."""
    if path is None:
        return builtin_search_tasks(split=split, n=n, seed=seed)
    kind = format or _guess_format(Path(path))
    if kind == "nq_open":
        return load_nq_open(path, corpus=corpus, n=n)
    if kind == "hotpotqa":
        return load_hotpotqa(path, corpus=corpus, n=n)
    raise ValueError(f"unknown QA format {kind!r}; use 'nq_open' or 'hotpotqa'")


def _guess_format(path: Path) -> str:
    from traject.environments.search.loaders import QAFileError, _read_records

    records = _read_records(path, "NQ-open JSONL or HotpotQA JSON")
    first = records[0][1] if records else None
    if isinstance(first, dict) and "context" in first:
        return "hotpotqa"
    if isinstance(first, dict) and "question" in first:
        return "nq_open"
    raise QAFileError(f"{path}: cannot tell the format (expected NQ-open records {{question, answer}} or HotpotQA "
                      "records {question, answer, context}); pass format=")
