"""The ``sql`` env: answer a question about a SQLite database by querying it.

Tools: ``execute_sql`` (read-only, time-limited, rows and characters capped) and ``submit``;
a final answer in plain text works too (its SQL is extracted). Reward: SQL execution match
against the gold query.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from traject.environments.base import StepResult
from traject.environments.sql.answer import extract_sql
from traject.environments.sql.builtin import builtin_sql_tasks
from traject.environments.sql.loaders import detect_layout, load_bird, load_intercode, load_spider
from traject.environments.sql.tools import SQLLimits, SQLToolset
from traject.environments.tool_env import ToolEnv
from traject.types import Message, Task

if TYPE_CHECKING:
    from traject.rewards.base import Reward

SYSTEM_PROMPT = (
    "You answer questions about a SQLite database by writing SQL. The database is read-only. Use "
    "`execute_sql` to look at tables and try queries, then call `submit` with the one SQL query whose "
    "result answers the question."
)


class SQLEnv(ToolEnv):
    """A ToolEnv whose text answers are SQL: a reply without tool calls ends the episode, and the
    SQL in it is the final answer."""

    async def step(self, action: Message) -> StepResult:
        result = await super().step(action)
        if not action.tool_calls and result.terminated and result.final_answer is not None:
            result.final_answer = extract_sql(result.final_answer)
        return result


def default_sql_reward() -> Reward:
    from traject.rewards.verifiers.sql import SQLExecutionMatch

    return SQLExecutionMatch()


def make_sql_env(*, max_turns: int = 10, timeout_s: float = 5.0, max_rows: int = 50, max_chars: int = 4000,
                 tool_timeout_s: float = 30.0, reward: Reward | None = None, system_prompt: str = SYSTEM_PROMPT) -> SQLEnv:
    limits = SQLLimits(timeout_s=timeout_s, max_rows=max_rows, max_chars=max_chars)
    return SQLEnv([SQLToolset(limits)], name="sql", system_prompt=system_prompt, max_turns=max_turns,
                  tool_timeout_s=tool_timeout_s, reward=reward if reward is not None else default_sql_reward())


def sql_tasks(split: str = "test", n: int | None = None, seed: int = 0, path: str | Path | None = None,
              layout: str | None = None, dump: str | Path | None = None, questions: str | Path | None = None,
              **_: Any) -> list[Task]:
    """Built-in tasks, or a Spider / BIRD / InterCode benchmark at ``path`` (layout detected unless
    given; InterCode's ``dump=`` and ``questions=`` name its files when the folder holds several)."""
    if path is None:
        return builtin_sql_tasks(split=split, n=n, seed=seed)
    kind = layout or detect_layout(path)
    split = "dev" if split in ("test", "validation") and kind in ("bird", "intercode") else split
    split = "dev" if split == "validation" else split
    if kind == "spider":
        return load_spider(path, split=split, n=n)
    if kind == "bird":
        return load_bird(path, split=split, n=n)
    if kind == "intercode":
        return load_intercode(path, split=split, n=n, dump=dump, questions=questions)
    raise ValueError(f"unknown SQL benchmark layout {kind!r}; use 'spider', 'bird' or 'intercode'")
