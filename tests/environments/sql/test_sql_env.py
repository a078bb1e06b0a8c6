from pathlib import Path

import pytest

import traject
from traject.agents import AgentLoop, Rollouts, ScriptedPolicy
from traject.agents.openai_policy import OpenAIPolicy
from traject.environments.sql import file_digest
from traject.testing import ScriptedReply
from traject.types import Message, Status, ToolCall


@pytest.fixture
async def policies():
    made: list[OpenAIPolicy] = []
    yield lambda server: made.append(OpenAIPolicy(model="agent", base_url=server.url, backoff_s=0.01)) or made[-1]
    for p in made:
        await p.aclose()


def submit(sql: str) -> Message:
    return Message.assistant("", tool_calls=[ToolCall(name="submit", arguments={"sql": sql})])


@pytest.mark.anyio
async def test_episode_over_http_explore_then_submit(chat_server, policies):
    task = traject.load_tasks("sql", split="all")[0]  # "How many customers are there?"
    server = chat_server([
        ScriptedReply(tool_calls=[("execute_sql", {"query": "SELECT name FROM sqlite_master WHERE type='table'"})]),
        ScriptedReply(tool_calls=[("execute_sql", {"query": "SELECT COUNT(*) FROM customers"})]),
        ScriptedReply(tool_calls=[("submit", {"sql": "SELECT count(id) FROM customers"})]),
    ])
    traj = await AgentLoop(policies(server)).run(traject.make("sql"), task)
    assert traj.status is Status.COMPLETED and traj.reward.total == 1.0 and traj.success
    assert "customers" in traj.steps[0].observations[0].text and traj.steps[1].observations[0].text.endswith("30")
    assert traj.final_answer == "SELECT count(id) FROM customers"
    first = server.requests[0].body
    assert {t["function"]["name"] for t in first["tools"]} == {"execute_sql", "submit"}
    assert "CREATE TABLE customers" in first["messages"][1]["content"]  # the schema is in the prompt


@pytest.mark.anyio
async def test_text_answer_and_wrong_answer(chat_server, policies):
    task = traject.load_tasks("sql", split="all")[1]  # products over 20
    right = chat_server(["The query:\n```sql\nSELECT COUNT(*) FROM products WHERE price > 20\n```"])
    wrong = chat_server(["```sql\nSELECT COUNT(*) FROM products\n```"])
    good = await AgentLoop(policies(right)).run(traject.make("sql"), task)
    bad = await AgentLoop(policies(wrong)).run(traject.make("sql"), task)
    assert good.final_answer == "SELECT COUNT(*) FROM products WHERE price > 20" and good.reward.total == 1.0
    assert bad.reward.total == 0.0 and bad.status is Status.COMPLETED


@pytest.mark.anyio
async def test_writes_timeouts_and_errors_are_observations(chat_server, policies):
    task = traject.load_tasks("sql", split="all")[0]
    db = Path(task.data["db_path"])
    before = file_digest(db)
    server = chat_server([
        ScriptedReply(tool_calls=[("execute_sql", {"query": "DELETE FROM customers"})]),
        ScriptedReply(tool_calls=[("execute_sql", {"query": "ATTACH DATABASE '/tmp/x.sqlite' AS x"})]),
        ScriptedReply(tool_calls=[("execute_sql", {"query": "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL "
                                                            "SELECT n+1 FROM c) SELECT max(n) FROM c"})]),
        ScriptedReply(tool_calls=[("execute_sql", {"query": "SELEC oops"})]),
        ScriptedReply(tool_calls=[("execute_sql", {"sql": "SELECT 1"})]),
        ScriptedReply(tool_calls=[("submit", {"sql": "SELECT COUNT(*) FROM customers"})]),
    ])
    traj = await AgentLoop(policies(server)).run(traject.make("sql", timeout_s=0.3), task)
    results = [s.tool_results[0] for s in traj.steps]
    assert results[0].is_error and results[0].content.startswith("Error: refused") and "DELETE" in results[0].content
    assert results[1].is_error and "ATTACH" in results[1].content
    assert results[2].is_error and "timeout" in results[2].content and results[2].metadata == {"timeout": True}
    assert results[3].is_error and "syntax error" in results[3].content
    assert results[4].error_kind == "arguments" and "missing required argument 'query'" in results[4].content
    assert traj.status is Status.COMPLETED and traj.reward.total == 1.0
    assert file_digest(db) == before


@pytest.mark.anyio
async def test_gold_replay_gets_full_reward_and_a_corrupted_one_does_not():
    tasks = traject.load_tasks("sql", split="all")
    assert len(tasks) >= 24

    def gold(messages, tools):
        task = next(t for t in tasks if t.prompt == messages[1].text)
        return submit(task.answer)

    def corrupted(messages, tools):
        task = next(t for t in tasks if t.prompt == messages[1].text)
        return submit(f"SELECT * FROM ({task.answer}) LIMIT 0")  # every gold result has rows

    good = await Rollouts(ScriptedPolicy(gold), "sql", concurrency=8).run(tasks)
    bad = await Rollouts(ScriptedPolicy(corrupted), "sql", concurrency=8).run(tasks)
    assert all(t.reward.total == 1.0 for t in good), [t.reward for t in good if t.reward.total != 1.0]
    assert all(t.reward.total == 0.0 for t in bad)


def test_builtin_database_is_deterministic(tmp_path, monkeypatch):
    from traject.environments.sql.builtin import generate_database

    a, b = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    generate_database(a, seed=0)
    generate_database(b, seed=0)
    assert file_digest(a) == file_digest(b)
    generate_database(b, seed=1)
    assert file_digest(a) != file_digest(b)
