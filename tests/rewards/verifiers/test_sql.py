"""SQL execution match against a real SQLite file."""

from __future__ import annotations

import sqlite3

import anyio
import pytest

from traject.rewards.verifiers import SQLExecutionMatch, SQLMatchConfig, results_match
from traject.types import Message, Step, Task, ToolCall, Trajectory


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "shop.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, price REAL, kind TEXT);
        INSERT INTO items(name, price, kind) VALUES
          ('pen', 1.5, 'office'), ('ink', 1.5, 'office'), ('mug', 7.0, 'kitchen'), ('pan', 20.0, 'kitchen');
    """)
    conn.commit()
    conn.close()
    return str(path)


def score(db, pred, gold, **cfg):
    traj = Trajectory(task_id="s", final_answer=pred)
    return anyio.run(SQLExecutionMatch(SQLMatchConfig(**cfg)).score, traj, Task(id="s", answer=gold, data={"db_path": db}))


def test_unordered_gold_compares_multisets(db):
    gold = "SELECT price FROM items WHERE kind = 'office'"           # [1.5, 1.5]
    assert score(db, "```sql\nSELECT price FROM items WHERE price < 2 ORDER BY name;\n```", gold).total == 1.0
    # the multiset has 1.5 twice: DISTINCT gives one row, a different multiset (a set would match)
    assert score(db, "SELECT DISTINCT price FROM items WHERE kind = 'office'", gold).total == 0.0
    assert score(db, "SELECT DISTINCT price FROM items WHERE kind = 'office'", gold, compare="set").total == 1.0


def test_order_kept_only_when_gold_orders(db):
    gold = "SELECT name FROM items ORDER BY price DESC, name"        # pan, mug, ink, pen
    assert score(db, "SELECT name FROM items ORDER BY price DESC, name", gold).total == 1.0
    r = score(db, "SELECT name FROM items ORDER BY name", gold)
    assert r.total == 0.0 and r.info["ordered"] is True
    assert score(db, "SELECT name FROM items ORDER BY name", gold, respect_gold_order=False).total == 1.0


def test_column_permutation(db):
    gold = "SELECT name, price FROM items"
    assert score(db, "SELECT price, name FROM items", gold).total == 0.0
    assert score(db, "SELECT price, name FROM items", gold, column_permutation=True).total == 1.0


def test_bad_predictions_score_zero_and_the_db_stays_read_only(db):
    gold = "SELECT count(*) FROM items"
    r = score(db, "SELEC nonsense", gold)
    assert r.total == 0.0 and "syntax error" in r.info["error"]
    r = score(db, "DELETE FROM items", gold)
    assert r.total == 0.0 and "readonly" in r.info["error"].lower().replace(" ", "") or "attempt to write" in r.info["error"]
    r = score(db, f"ATTACH DATABASE '{db}.evil' AS evil", gold)
    assert r.total == 0.0 and "not authorized" in r.info["error"]
    assert sqlite3.connect(db).execute("SELECT count(*) FROM items").fetchone() == (4,)


def test_time_limit(db):
    slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    r = score(db, slow, "SELECT 1", timeout_s=0.3)
    assert r.total == 0.0 and r.info["timed_out"] is True


def test_gold_failure_is_a_failed_reward_not_zero(db, tmp_path):
    assert score(db, "SELECT 1", "SELECT * FROM nowhere").failed
    assert score(str(tmp_path / "missing.sqlite"), "SELECT 1", "SELECT 1").failed


def test_prediction_from_the_last_tool_call(db):
    calls = [ToolCall(name="execute_sql", arguments={"query": "SELECT 0"}),
             ToolCall(name="execute_sql", arguments={"query": "SELECT count(*) FROM items;"})]
    traj = Trajectory(task_id="s", steps=[Step(index=0, action=Message.assistant("", tool_calls=calls))])
    r = anyio.run(SQLExecutionMatch(SQLMatchConfig(prediction_from="tool_call")).score, traj,
                  Task(id="s", answer="SELECT 4", data={"db_path": db}))
    assert r.total == 1.0


def test_results_match_rules():
    assert results_match([(1,), (2,)], [(2,), (1,)], ordered=False)
    assert not results_match([(1,), (2,)], [(2,), (1,)], ordered=True)
    assert not results_match([(1,), (1,)], [(1,)], ordered=False)
    assert results_match([(1,), (1,)], [(1,)], ordered=False, compare="set")
