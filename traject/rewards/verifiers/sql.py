"""SQL execution match, Spider/BIRD style: run the predicted and the gold query against the
task's real SQLite file and compare what they return.

* The database is opened read-only (``mode=ro`` URI and ``PRAGMA query_only``), each query
  under a wall-clock limit (SQLite's progress handler interrupts it), in a worker thread.
* Rows are compared as multisets (``Counter`` of row tuples); when the gold query orders its
  result (``ORDER BY`` in the gold SQL, Spider's evaluation test), the order must match too.
* ``compare="set"`` compares sets of rows, as BIRD's official evaluation does;
  ``column_permutation=True`` accepts the same columns in another order (Spider test-suite).
* A predicted query that fails (syntax error, missing table, over the time limit) scores 0
  with the reason in ``info``. A gold query that fails, or a database that is not there, is
  not the agent's fault: the reward is ``failed``.

The predicted SQL is the trajectory's final answer (a ```sql fence is unwrapped), or, with
``prediction_from="tool_call"``, the ``argument`` of the last call to ``tool_name``.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections import Counter
from itertools import permutations
from pathlib import Path
from typing import Any, Literal

import anyio
from pydantic import BaseModel, ConfigDict, Field

from traject.rewards.base import Reward
from traject.types import RewardResult, Task, Trajectory

_FENCE = re.compile(r"```(?:sql|sqlite)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
_ORDER_BY = re.compile(r"\border\s+by\b", re.IGNORECASE)


class SQLExecutionError(Exception):
    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class SQLMatchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "sql_execution_match"
    db_key: str = "db_path"
    gold_key: str | None = None            # None: task.answer holds the gold SQL
    timeout_s: float = Field(default=10.0, gt=0)
    max_rows: int | None = Field(default=100_000, ge=1)
    compare: Literal["multiset", "set"] = "multiset"
    respect_gold_order: bool = True
    column_permutation: bool = False
    prediction_from: Literal["final_answer", "tool_call"] = "final_answer"
    tool_name: str = "execute_sql"
    argument: str = "query"


def extract_sql(text: str) -> str:
    blocks = _FENCE.findall(text)
    return (blocks[-1] if blocks else text).strip().rstrip(";").strip()


def run_query(db_path: str | Path, sql: str, *, timeout_s: float, max_rows: int | None = None) -> list[tuple[Any, ...]]:
    """``sql``'s rows from a read-only connection, interrupted after ``timeout_s``."""
    path = Path(db_path)
    if not path.is_file():
        raise FileNotFoundError(f"no SQLite database at {path}")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    deadline = time.monotonic() + timeout_s
    conn.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 1000)
    try:
        conn.execute("PRAGMA query_only = ON")
        conn.set_authorizer(_read_only_authorizer)
        try:
            cur = conn.execute(sql)
            rows = cur.fetchmany(max_rows + 1) if max_rows is not None else cur.fetchall()
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                raise SQLExecutionError(f"query did not finish within {timeout_s:g} s", timed_out=True) from None
            raise SQLExecutionError(f"{type(exc).__name__}: {exc}") from None
        except sqlite3.Error as exc:
            raise SQLExecutionError(f"{type(exc).__name__}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - e.g. a value SQLite cannot turn into Python
            raise SQLExecutionError(f"{type(exc).__name__}: {exc}") from None
        if max_rows is not None and len(rows) > max_rows:
            raise SQLExecutionError(f"query returned more than {max_rows} rows")
        return [tuple(r) for r in rows]
    finally:
        conn.close()


_DENIED = {sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH, sqlite3.SQLITE_PRAGMA}


def _read_only_authorizer(action: int, *args: Any) -> int:
    # query_only already refuses writes; this also refuses ATTACH (which could create a file)
    # and PRAGMAs (which could turn query_only off).
    return sqlite3.SQLITE_DENY if action in _DENIED else sqlite3.SQLITE_OK


def results_match(pred: list[tuple[Any, ...]], gold: list[tuple[Any, ...]], *, ordered: bool,
                  compare: Literal["multiset", "set"] = "multiset", column_permutation: bool = False) -> bool:
    def same(p: list[tuple[Any, ...]]) -> bool:
        if compare == "set":
            return set(p) == set(gold) and (not ordered or _dedup(p) == _dedup(gold))
        if ordered:
            return p == gold
        return Counter(p) == Counter(gold)

    if same(pred):
        return True
    if not column_permutation or not pred or not gold or len(pred[0]) != len(gold[0]) or len(pred[0]) > 6:
        return False
    width = len(pred[0])
    for perm in permutations(range(width)):
        if list(perm) == list(range(width)):
            continue
        if same([tuple(row[i] for i in perm) for row in pred]):
            return True
    return False


def _dedup(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    seen: set[tuple[Any, ...]] = set()
    out = []
    for r in rows:
        if r not in seen:
            seen.add(r)
            out.append(r)
    return out


def predicted_sql(traj: Trajectory, config: SQLMatchConfig) -> str | None:
    if config.prediction_from == "tool_call":
        for step in reversed(traj.steps):
            for call in reversed(step.action.tool_calls):
                if call.name == config.tool_name and isinstance(call.arguments.get(config.argument), str):
                    return str(call.arguments[config.argument]).strip().rstrip(";")
        return None
    if traj.final_answer is None:
        return None
    return extract_sql(traj.final_answer)


class SQLExecutionMatch(Reward):
    def __init__(self, config: SQLMatchConfig | None = None) -> None:
        self.config = config or SQLMatchConfig()
        self.name = self.config.name

    async def score(self, traj: Trajectory, task: Task) -> RewardResult:
        c = self.config
        db = task.data.get(c.db_key)
        gold = task.data.get(c.gold_key) if c.gold_key else task.answer
        if not isinstance(db, str) or not isinstance(gold, str):
            where = f"task.data[{c.gold_key!r}]" if c.gold_key else "task.answer"
            return RewardResult(failed=True, error=f"task {task.id!r} needs task.data[{c.db_key!r}] (a SQLite "
                                f"file) and the gold SQL in {where}")
        try:
            gold_rows = await anyio.to_thread.run_sync(
                lambda: run_query(db, gold, timeout_s=c.timeout_s, max_rows=c.max_rows))
        except (SQLExecutionError, FileNotFoundError, sqlite3.Error) as exc:
            return RewardResult(failed=True, error=f"the gold query of task {task.id!r} failed: {exc}")
        pred = predicted_sql(traj, c)
        info: dict[str, Any] = {"predicted_sql": pred, "gold_rows": len(gold_rows)}
        ok = False
        if pred:
            try:
                pred_rows = await anyio.to_thread.run_sync(
                    lambda: run_query(db, pred, timeout_s=c.timeout_s, max_rows=c.max_rows))
            except SQLExecutionError as exc:
                info["error"] = str(exc)
                info["timed_out"] = exc.timed_out
            else:
                info["predicted_rows"] = len(pred_rows)
                ordered = c.respect_gold_order and bool(_ORDER_BY.search(gold))
                info["ordered"] = ordered
                ok = results_match(pred_rows, gold_rows, ordered=ordered, compare=c.compare,
                                   column_permutation=c.column_permutation)
        else:
            info["error"] = "no predicted SQL"
        v = 1.0 if ok else 0.0
        return RewardResult(total=v, components={self.name: v}, success=ok, info=info)
