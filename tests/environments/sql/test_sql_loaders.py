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


# InterCode's layout: mysqldump output holding every database, and ic_*.json questions
# ({"db", "query" = the question, "gold" = the SQL}; BIRD's adds question_id, evidence, difficulty).
INTERCODE_DUMP = r"""-- MySQL dump 10.13  Distrib 8.0.32, for Linux (x86_64)
/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!50503 SET NAMES utf8mb4 */;
CREATE USER 'admin'@'%' IDENTIFIED BY 'admin';
GRANT ALL PRIVILEGES ON *.* TO 'admin'@'%';

--
-- Current Database: `concert_singer`
--

CREATE DATABASE /*!32312 IF NOT EXISTS*/ `concert_singer` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;
USE `concert_singer`;
DROP TABLE IF EXISTS `singer`;
CREATE TABLE `singer` (
  `Singer_ID` int NOT NULL AUTO_INCREMENT,
  `Name` text COLLATE utf8mb4_bin COMMENT 'stage name',
  `Country` varchar(255) CHARACTER SET utf8mb4 DEFAULT NULL,
  `Age` int DEFAULT NULL,
  `Voice` enum('alto','tenor') DEFAULT NULL,
  `Updated` timestamp NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (`Singer_ID`),
  UNIQUE KEY `uniq_name` (`Name`(20)),
  KEY `idx_country` (`Country`)
) ENGINE=InnoDB AUTO_INCREMENT=4 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci;
LOCK TABLES `singer` WRITE;
/*!40000 ALTER TABLE `singer` DISABLE KEYS */;
INSERT INTO `singer` VALUES (1,'Joe; Sharp','Netherlands',52,'alto','2020-01-01 00:00:00'),(2,'Timbaland','United States',32,'tenor',NULL),(3,'O\'Brien \"Jr\"','Ireland',41,NULL,NULL);
/*!40000 ALTER TABLE `singer` ENABLE KEYS */;
UNLOCK TABLES;
INSERT INTO `singer` (`Singer_ID`, `Name`) VALUES (4, CONCAT('Ann', 'a'));

CREATE DATABASE IF NOT EXISTS `empty_db`;
USE `empty_db`;
CREATE TABLE `t` (`a` int);
"""


@pytest.fixture
def intercode(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAJECT_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "intercode"
    root.mkdir()
    (root / "spider_dev.sql").write_text(INTERCODE_DUMP)
    (root / "ic_spider_dev.json").write_text(json.dumps([
        {"db": "concert_singer", "gold": "SELECT count(*) FROM singer WHERE Country = \"Ireland\"",
         "query": "How many singers are from Ireland?", "hardness": "easy",
         "db_tables": {"singer": ["Singer_ID", "Name", "Country", "Age"]}},
        {"db": "concert_singer", "gold": "SELECT Name FROM singer ORDER BY Age DESC LIMIT 1",
         "query": "Who is the oldest singer?", "hardness": "medium", "db_tables": {}},
    ]))
    return root


def test_intercode_layout_converts_the_mysql_dump(intercode):
    tasks = traject.load_tasks("sql", path=intercode)
    assert [t.id for t in tasks] == ["spider_dev-0", "spider_dev-1"]
    assert tasks[0].data["question"] == "How many singers are from Ireland?"
    assert tasks[0].metadata["difficulty"] == "easy" and 'CREATE TABLE "singer"' in tasks[0].prompt
    conn = sqlite3.connect(tasks[0].data["db_path"])
    rows = conn.execute("SELECT Singer_ID, Name, Country, Voice FROM singer ORDER BY Singer_ID").fetchall()
    # The ';' inside a string, backslash escapes, ENUM values and a non-literal INSERT (via sqlglot) all arrive.
    assert rows == [(1, "Joe; Sharp", "Netherlands", "alto"), (2, "Timbaland", "United States", "tenor"),
                    (3, 'O\'Brien "Jr"', "Ireland", None), (4, "Anna", None, None)]
    assert conn.execute(tasks[0].answer).fetchall() == [(1,)]
    conn.close()
    # Converted once: the second load reads the cache (the converted files stay where they were).
    again = traject.load_tasks("sql", path=intercode, n=1)
    assert again[0].data["db_path"] == tasks[0].data["db_path"]


@pytest.mark.anyio
async def test_intercode_task_runs_and_scores(intercode):
    from traject.agents import AgentLoop, ScriptedPolicy
    from traject.types import Message, ToolCall

    task = traject.load_tasks("sql", path=intercode)[1]
    policy = ScriptedPolicy([Message.assistant(tool_calls=[ToolCall(name="submit", arguments={
        "sql": "SELECT Name FROM singer WHERE Age = (SELECT max(Age) FROM singer)"})])])
    traj = await AgentLoop(policy).run(traject.make("sql"), task)
    assert traj.reward.total == 1.0


def test_empty_database_warns(intercode):
    (intercode / "ic_spider_dev.json").write_text(json.dumps([
        {"db": "empty_db", "gold": "SELECT a FROM t", "query": "Any a?", "hardness": "easy"}]))
    with pytest.warns(UserWarning, match="'empty_db' has no rows"):
        traject.load_tasks("sql", path=intercode)


def test_intercode_bad_inputs_name_the_file(intercode):
    (intercode / "ic_spider_dev.json").write_text(json.dumps([{"db": "music", "gold": "SELECT 1", "query": "q"}]))
    with pytest.raises(TaskFileError, match="'music', which spider_dev.sql does not create"):
        traject.load_tasks("sql", path=intercode)
    (intercode / "ic_spider_dev.json").write_text(json.dumps([{"db": "concert_singer", "query": "q"}]))
    with pytest.raises(TaskFileError, match="item 0 has no string field 'gold'"):
        traject.load_tasks("sql", path=intercode)
    other = intercode.parent / "two_dumps"
    other.mkdir()
    (other / "ic_bird.json").write_text("[]")
    (other / "a.sql").write_text("USE `x`;")
    (other / "b.sql").write_text("USE `y`;")
    with pytest.raises(TaskFileError, match=r"which MySQL dump .* \(found: a.sql, b.sql\); name it with dump="):
        traject.load_tasks("sql", path=other)
    (other / "b.sql").write_text("CREATE DATABASE `y`;\nUSE `y`;\nCREATE TABLE `t` (`a` int, `a` int);")
    with pytest.raises(TaskFileError, match=r"b.sql, line 3: database 'y': SQLite refused"):
        traject.load_tasks("sql", path=other, dump=other / "b.sql")
