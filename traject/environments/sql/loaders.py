"""Text-to-SQL tasks from the Spider and BIRD layouts.

Spider::

    <root>/tables.json
    <root>/dev.json | train_spider.json | test.json      [{"db_id", "question", "query"}, ...]
    <root>/database/<db_id>/<db_id>.sqlite              (test: test_database/)

BIRD::

    <root>/dev.json | train.json                        [{"question_id", "db_id", "question", "evidence", "SQL"}, ...]
    <root>/dev_tables.json | train_tables.json
    <root>/dev_databases/<db_id>/<db_id>.sqlite | train_databases/...

InterCode (Spider or BIRD as one MySQL dump plus questions)::

    <root>/ic_spider_dev.json | ic_bird.json            [{"db", "query" (the question), "gold", ...}, ...]
    <root>/spider_dev.sql | ic_bird_dbs.sql             mysqldump of every database

The dump is converted to SQLite once (``mysql_dump.convert_dump``, with sqlglot) and cached by
its content under ``$TRAJECT_CACHE_DIR/sql/`` (default ``~/.cache/traject/sql/``). A database without a single row gets a warning.

A wrong path or a malformed file gives an error naming the file and what was expected.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import sqlite3
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from traject.types import Task

SPIDER_SPLITS = {"dev": ("dev.json", "database"), "validation": ("dev.json", "database"),
                 "train": ("train_spider.json", "database"), "test": ("test.json", "test_database")}
BIRD_SPLITS = {"dev": ("dev.json", "dev_tables.json", "dev_databases"),
               "validation": ("dev.json", "dev_tables.json", "dev_databases"),
               "train": ("train.json", "train_tables.json", "train_databases")}


log = logging.getLogger(__name__)


class TaskFileError(ValueError):
    """A benchmark file that is missing or not in the expected format."""


def _read_json(path: Path, expected: str) -> Any:
    if not path.is_file():
        raise TaskFileError(f"{path}: file not found (expected {expected})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TaskFileError(f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno} "
                            f"(expected {expected})") from exc


@lru_cache(maxsize=256)
def read_schema(db_path: str) -> str:
    """The CREATE statements of a SQLite file, read once per file (read-only)."""
    conn = sqlite3.connect(f"file:{quote(str(Path(db_path).resolve()))}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT sql FROM sqlite_master WHERE type IN ('table', 'view') AND sql IS NOT NULL "
                            "AND name NOT LIKE 'sqlite_%' ORDER BY name").fetchall()
    finally:
        conn.close()
    return "\n".join(re.sub(r"\s+\n", "\n", str(r[0]).strip()) + ";" for r in rows)


@lru_cache(maxsize=256)
def warn_if_empty(db_path: str, db_id: str) -> bool:
    """Warn (once per file) when no table of the database holds a row; True when it is empty."""
    conn = sqlite3.connect(f"file:{quote(str(Path(db_path).resolve()))}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                             "AND name NOT LIKE 'sqlite_%'")]
        empty = all(conn.execute(f'SELECT 1 FROM "{t.replace(chr(34), chr(34) * 2)}" LIMIT 1').fetchone() is None
                    for t in tables)
    finally:
        conn.close()
    if empty:
        message = (f"{db_path}: database {db_id!r} has no rows in any of its {len(tables)} table(s); "
                   "every query returns nothing, so execution match cannot tell answers apart")
        warnings.warn(message, stacklevel=2)
        log.warning(message)
    return empty


def sql_prompt(question: str, schema: str, evidence: str | None = None) -> str:
    parts = [f"Database schema (SQLite):\n{schema}", f"Question: {question}"]
    if evidence:
        parts.append(f"Hint: {evidence}")
    parts.append("Explore the database with `execute_sql` as needed, then call `submit` with one SQL query "
                 "whose result answers the question.")
    return "\n\n".join(parts)


def make_sql_task(task_id: str, *, db_path: Path, db_id: str, question: str, gold_sql: str | None,
                  evidence: str | None = None, metadata: dict[str, Any] | None = None) -> Task:
    schema = read_schema(str(db_path))
    warn_if_empty(str(db_path), db_id)
    return Task(
        id=task_id,
        prompt=sql_prompt(question, schema, evidence),
        answer=gold_sql,
        data={"db_path": str(db_path), "db_id": db_id, "question": question, "gold_sql": gold_sql,
              "evidence": evidence},
        metadata=metadata or {},
    )


def _db_file(root: Path, db_dir: str, db_id: str, source: Path, index: int) -> Path:
    path = root / db_dir / db_id / f"{db_id}.sqlite"
    if not path.is_file():
        raise TaskFileError(f"{source}: item {index} names database {db_id!r}, but {path} does not exist "
                            f"(expected {db_dir}/<db_id>/<db_id>.sqlite under {root})")
    return path


def _field(item: Any, key: str, source: Path, index: int, alternatives: tuple[str, ...] = ()) -> str:
    if not isinstance(item, dict):
        raise TaskFileError(f"{source}: item {index} is a {type(item).__name__}, expected a JSON object")
    for k in (key, *alternatives):
        if isinstance(item.get(k), str):
            return item[k]
    raise TaskFileError(f"{source}: item {index} has no string field {key!r}")


def _select(items: list[Any], n: int | None, source: Path) -> list[tuple[int, Any]]:
    if not isinstance(items, list):
        raise TaskFileError(f"{source}: expected a JSON list of examples, got a {type(items).__name__}")
    pairs = list(enumerate(items))
    return pairs if n is None else pairs[:n]


def load_spider(root: str | Path, split: str = "dev", n: int | None = None) -> list[Task]:
    root = Path(root)
    if not root.is_dir():
        raise TaskFileError(f"{root}: not a directory (expected the Spider root with tables.json, dev.json and database/)")
    if split not in SPIDER_SPLITS:
        raise TaskFileError(f"unknown Spider split {split!r}; use one of {sorted(SPIDER_SPLITS)}")
    examples_name, db_dir = SPIDER_SPLITS[split]
    tables = _read_json(root / "tables.json", "Spider's tables.json: a list of {db_id, table_names, ...}")
    if not isinstance(tables, list) or not all(isinstance(t, dict) and "db_id" in t for t in tables):
        raise TaskFileError(f"{root / 'tables.json'}: expected a list of objects each with a 'db_id'")
    known = {t["db_id"] for t in tables}
    source = root / examples_name
    items = _read_json(source, "a list of {db_id, question, query}")
    tasks = []
    for i, item in _select(items, n, source):
        db_id = _field(item, "db_id", source, i)
        if db_id not in known:
            raise TaskFileError(f"{source}: item {i} names database {db_id!r}, which tables.json does not list")
        tasks.append(make_sql_task(
            f"spider-{split}-{i}", db_path=_db_file(root, db_dir, db_id, source, i), db_id=db_id,
            question=_field(item, "question", source, i), gold_sql=_field(item, "query", source, i),
            metadata={"source": "spider", "split": split, "index": i}))
    return tasks


def load_bird(root: str | Path, split: str = "dev", n: int | None = None) -> list[Task]:
    root = Path(root)
    if not root.is_dir():
        raise TaskFileError(f"{root}: not a directory (expected the BIRD root with dev.json, dev_tables.json and "
                            "dev_databases/)")
    if split not in BIRD_SPLITS:
        raise TaskFileError(f"unknown BIRD split {split!r}; use one of {sorted(BIRD_SPLITS)}")
    examples_name, tables_name, db_dir = BIRD_SPLITS[split]
    tables = _read_json(root / tables_name, "BIRD's tables file: a list of {db_id, table_names_original, ...}")
    if not isinstance(tables, list):
        raise TaskFileError(f"{root / tables_name}: expected a JSON list of database descriptions")
    source = root / examples_name
    items = _read_json(source, "a list of {question_id, db_id, question, evidence, SQL}")
    tasks = []
    for i, item in _select(items, n, source):
        db_id = _field(item, "db_id", source, i)
        qid = item.get("question_id", i) if isinstance(item, dict) else i
        evidence = item.get("evidence") if isinstance(item.get("evidence"), str) else None
        tasks.append(make_sql_task(
            f"bird-{split}-{qid}", db_path=_db_file(root, db_dir, db_id, source, i), db_id=db_id,
            question=_field(item, "question", source, i), gold_sql=_field(item, "SQL", source, i, ("sql", "query")),
            evidence=evidence or None,
            metadata={"source": "bird", "split": split, "index": i,
                      "difficulty": item.get("difficulty") if isinstance(item.get("difficulty"), str) else None}))
    return tasks


def _pick(candidates: list[Path], split: str, what: str, root: Path, option: str) -> Path:
    if len(candidates) == 1:
        return candidates[0]
    named = [c for c in candidates if split in c.stem.lower().replace("-", "_").split("_")]
    if len(named) == 1:
        return named[0]
    listed = ", ".join(c.name for c in candidates) or "none"
    raise TaskFileError(f"{root}: cannot tell which {what} to use for split {split!r} (found: {listed}); "
                        f"name it with {option}=")


def _dump_for(questions: Path, dumps: list[Path]) -> Path | None:
    """The dump whose name shares the most words with the questions file's."""
    words = set(questions.stem.lower().removeprefix("ic_").split("_"))
    scored = sorted(((len(words & set(d.stem.lower().removeprefix("ic_").split("_"))), d) for d in dumps),
                    key=lambda x: -x[0])
    if not scored or (len(scored) > 1 and scored[0][0] == scored[1][0]):
        return None
    return scored[0][1]


def load_intercode(root: str | Path, split: str = "dev", n: int | None = None, *, questions: str | Path | None = None,
                   dump: str | Path | None = None, db_dir: str | Path | None = None) -> list[Task]:
    """InterCode's SQL layout: a MySQL dump of every database plus a JSON list of
    ``{"db", "query", "gold"}`` (BIRD's also ``question_id``, ``evidence``, ``difficulty``).

    The dump becomes one SQLite file per database under ``db_dir`` (default: the cache, keyed by
    the dump's sha256), converted once."""
    root = Path(root)
    if not root.is_dir():
        raise TaskFileError(f"{root}: not a directory (expected InterCode's ic_*.json questions and a *.sql dump)")
    qpath = Path(questions) if questions else _pick(sorted(root.glob("ic_*.json")), split, "questions file",
                                                    root, "questions")
    if dump is not None:
        dpath = Path(dump)
    else:
        dumps = sorted(root.glob("*.sql"))
        dpath = dumps[0] if len(dumps) == 1 else _dump_for(qpath, dumps)
        if dpath is None:
            raise TaskFileError(f"{root}: cannot tell which MySQL dump holds the databases of {qpath.name} "
                                f"(found: {', '.join(d.name for d in dumps) or 'none'}); name it with dump=")
    if not dpath.is_file():
        raise TaskFileError(f"{dpath}: file not found (expected a MySQL dump: CREATE DATABASE, CREATE TABLE, INSERT)")
    items = _read_json(qpath, "InterCode's questions: a list of {db, query, gold}")
    databases = _converted(dpath, db_dir)
    name = qpath.stem.removeprefix("ic_")
    tasks = []
    for i, item in _select(items, n, qpath):
        db_id = _field(item, "db", qpath, i, ("db_id",))
        if db_id not in databases:
            raise TaskFileError(f"{qpath}: item {i} names database {db_id!r}, which {dpath.name} does not create "
                                f"(it holds: {', '.join(sorted(databases)) or 'no database'})")
        qid = item.get("question_id", i)
        evidence = item.get("evidence") if isinstance(item.get("evidence"), str) else None
        level = next((item[k] for k in ("hardness", "difficulty") if isinstance(item.get(k), str)), None)
        tasks.append(make_sql_task(
            f"{name}-{qid}", db_path=databases[db_id], db_id=db_id,
            question=_field(item, "query", qpath, i, ("question",)),
            gold_sql=_field(item, "gold", qpath, i, ("SQL", "sql")), evidence=evidence or None,
            metadata={"source": "intercode", "file": qpath.name, "index": i, "difficulty": level}))
    return tasks


def _converted(dump: Path, db_dir: str | Path | None) -> dict[str, Path]:
    from traject.environments.sql.mysql_dump import DumpError, convert_dump

    if db_dir is None:
        from traject.environments.sql.builtin import cache_dir

        h = hashlib.sha256()
        with dump.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        out = cache_dir() / "sql" / f"{dump.stem}-{h.hexdigest()[:16]}"
    else:
        out = Path(db_dir)
    done = out / "databases.json"
    if done.is_file():
        return {k: out / k / f"{k}.sqlite" for k in json.loads(done.read_text())}
    if out.exists() and db_dir is None:
        shutil.rmtree(out)  # a conversion that did not finish
    log.info("converting the MySQL dump %s to SQLite under %s (once)", dump, out)
    try:
        found = convert_dump(dump, out, default_db=dump.stem)
    except DumpError as exc:
        raise TaskFileError(str(exc)) from exc
    done.write_text(json.dumps(sorted(found)))
    return found


def detect_layout(root: str | Path) -> str:
    """``"spider"``, ``"bird"`` or ``"intercode"``, from the files under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise TaskFileError(f"{root}: not a directory (expected a Spider, BIRD or InterCode root)")
    if (root / "tables.json").is_file() and (root / "database").is_dir():
        return "spider"
    if any((root / name).is_dir() for name in ("dev_databases", "train_databases")):
        return "bird"
    if any(root.glob("ic_*.json")) and any(root.glob("*.sql")):
        return "intercode"
    raise TaskFileError(f"{root}: neither a Spider layout (tables.json + database/), a BIRD layout "
                        "(dev_tables.json + dev_databases/) nor InterCode's (ic_*.json + a MySQL dump *.sql)")
