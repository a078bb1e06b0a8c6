import json
import sqlite3

import pytest

import traject
from traject.environments.sql.loaders import TaskFileError, load_bird, load_spider


def make_db(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE singer (id INTEGER, name TEXT, age INTEGER)")
    conn.executemany("INSERT INTO singer VALUES (?, ?, ?)", [(1, "Ann", 30), (2, "Bo", 41)])
    conn.commit()
    conn.close()


@pytest.fixture
def spider(tmp_path):
    root = tmp_path / "spider"
    make_db(root / "database" / "concert" / "concert.sqlite")
    (root / "tables.json").write_text(json.dumps([{"db_id": "concert", "table_names": ["singer"]}]))
    (root / "dev.json").write_text(json.dumps([
        {"db_id": "concert", "question": "How many singers are there?", "query": "SELECT count(*) FROM singer"},
        {"db_id": "concert", "question": "Oldest singer?", "query": "SELECT name FROM singer ORDER BY age DESC LIMIT 1"},
    ]))
    return root


@pytest.fixture
def bird(tmp_path):
    root = tmp_path / "bird"
    make_db(root / "dev_databases" / "concert" / "concert.sqlite")
    (root / "dev_tables.json").write_text(json.dumps([{"db_id": "concert"}]))
    (root / "dev.json").write_text(json.dumps([
        {"question_id": 17, "db_id": "concert", "question": "Singers over 35?", "evidence": "over 35 means age > 35",
         "SQL": "SELECT name FROM singer WHERE age > 35", "difficulty": "simple"}]))
    return root


def test_spider_layout(spider):
    tasks = traject.load_tasks("sql", path=spider, split="dev")
    assert [t.id for t in tasks] == ["spider-dev-0", "spider-dev-1"]
    assert tasks[0].answer == "SELECT count(*) FROM singer" and tasks[0].data["db_id"] == "concert"
    assert "CREATE TABLE singer" in tasks[0].prompt and "How many singers" in tasks[0].prompt
    assert len(traject.load_tasks("sql", path=spider, split="dev", n=1)) == 1


def test_bird_layout(bird):
    [task] = traject.load_tasks("sql", path=bird, split="dev")
    assert task.id == "bird-dev-17" and task.data["evidence"] == "over 35 means age > 35"
    assert "Hint: over 35" in task.prompt and task.metadata["difficulty"] == "simple"


@pytest.mark.anyio
async def test_loaded_tasks_run_and_score(spider):
    from traject.agents import AgentLoop, ScriptedPolicy
    from traject.types import Message, ToolCall

    task = load_spider(spider)[1]
    policy = ScriptedPolicy([Message.assistant(tool_calls=[ToolCall(name="submit", arguments={
        "sql": "SELECT name FROM singer WHERE age = (SELECT max(age) FROM singer)"})])])
    traj = await AgentLoop(policy).run(traject.make("sql"), task)
    assert traj.reward.total == 1.0


def test_bad_inputs_name_the_file(spider, bird, tmp_path):
    with pytest.raises(TaskFileError, match="not a directory"):
        load_spider(tmp_path / "nowhere")
    with pytest.raises(TaskFileError, match="neither a Spider layout"):
        traject.load_tasks("sql", path=tmp_path)
    (spider / "dev.json").write_text("[{\"db_id\": \"concert\", \"question\": 1")
    with pytest.raises(TaskFileError, match=r"dev.json: not valid JSON at line 1"):
        load_spider(spider)
    (spider / "dev.json").write_text(json.dumps([{"db_id": "concert", "question": "q"}]))
    with pytest.raises(TaskFileError, match=r"dev.json: item 0 has no string field 'query'"):
        load_spider(spider)
    (spider / "dev.json").write_text(json.dumps([{"db_id": "music", "question": "q", "query": "SELECT 1"}]))
    with pytest.raises(TaskFileError, match="'music', which tables.json does not list"):
        load_spider(spider)
    (bird / "dev.json").write_text(json.dumps([{"db_id": "gone", "question": "q", "SQL": "SELECT 1"}]))
    with pytest.raises(TaskFileError, match=r"dev_databases/gone/gone.sqlite does not exist"):
        load_bird(bird)
    (bird / "dev_tables.json").unlink()
    with pytest.raises(TaskFileError, match=r"dev_tables.json: file not found"):
        load_bird(bird)
