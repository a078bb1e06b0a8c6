"""A SQLite database opened read-only for one episode.

Three locks keep the file untouched whatever the model writes: the file is opened with a URI
in ``mode=ro``; an authorizer denies every action but reading (no INSERT, UPDATE, DELETE,
CREATE, DROP, ATTACH, writing PRAGMAs...); and a progress handler interrupts any statement
past its time limit. Results are cut to a row and a character limit. Every call runs in a
worker thread, one at a time per connection, so the event loop never blocks.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio

# Read-only PRAGMAs a model may use to look at a schema.
READ_PRAGMAS = frozenset({"table_info", "table_xinfo", "index_list", "index_info", "index_xinfo",
                          "foreign_key_list", "table_list", "collation_list", "function_list"})
_ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
# Authorizer action codes by name, for messages (the numbers collide with sqlite's error codes,
# so a reverse lookup over the whole module would mislabel them).
_ACTION_NAMES = {
    getattr(sqlite3, n): n.removeprefix("SQLITE_").replace("_", " ") for n in (
        "SQLITE_INSERT", "SQLITE_UPDATE", "SQLITE_DELETE", "SQLITE_CREATE_TABLE", "SQLITE_CREATE_INDEX",
        "SQLITE_CREATE_VIEW", "SQLITE_CREATE_TRIGGER", "SQLITE_CREATE_TEMP_TABLE", "SQLITE_CREATE_TEMP_INDEX",
        "SQLITE_CREATE_TEMP_VIEW", "SQLITE_CREATE_TEMP_TRIGGER", "SQLITE_CREATE_VTABLE", "SQLITE_DROP_TABLE",
        "SQLITE_DROP_INDEX", "SQLITE_DROP_VIEW", "SQLITE_DROP_TRIGGER", "SQLITE_DROP_TEMP_TABLE",
        "SQLITE_DROP_TEMP_INDEX", "SQLITE_DROP_TEMP_VIEW", "SQLITE_DROP_TEMP_TRIGGER", "SQLITE_DROP_VTABLE",
        "SQLITE_ALTER_TABLE", "SQLITE_REINDEX", "SQLITE_ANALYZE", "SQLITE_ATTACH", "SQLITE_DETACH",
        "SQLITE_TRANSACTION", "SQLITE_SAVEPOINT", "SQLITE_PRAGMA") if hasattr(sqlite3, n)
}


class QueryRefused(Exception):
    """The statement would write, attach, or do something else a read-only episode may not."""


class QueryTimeout(Exception):
    """The statement ran past its time limit and was interrupted."""


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool = False
    duration_s: float = 0.0

    def to_text(self, max_chars: int) -> str:
        """A table for the model: a header, one line per row, cut to ``max_chars``."""
        if not self.columns:
            return "OK (the statement returned no rows)."
        lines = [" | ".join(self.columns)]
        lines += [" | ".join("NULL" if v is None else str(v) for v in row) for row in self.rows]
        text = "\n".join(lines)
        notes = []
        if len(text) > max_chars:
            text = text[:max_chars]
            notes.append(f"output cut at {max_chars} characters")
        if self.truncated:
            notes.append(f"only the first {len(self.rows)} rows are shown")
        if not self.rows:
            notes.append("0 rows")
        return text + ("\n(" + "; ".join(notes) + ")" if notes else "")


@dataclass
class _Guard:
    deadline: float = float("inf")
    refused: list[str] = field(default_factory=list)


def file_digest(path: str | Path) -> str:
    """sha256 of a database file: tests use it to show that nothing was written."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ReadOnlyDatabase:
    """One connection to one SQLite file, opened read-only. ``await db.execute(sql)``."""

    def __init__(self, path: str | Path, *, timeout_s: float = 5.0, max_rows: int = 50,
                 max_chars: int = 4000, progress_every: int = 1000) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such SQLite database file")
        self.timeout_s = timeout_s
        self.max_rows = max_rows
        self.max_chars = max_chars
        self._guard = _Guard()
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        self._conn.set_authorizer(self._authorize)
        self._conn.set_progress_handler(self._progress, progress_every)
        self._lock = anyio.Lock()
        self._closed = False

    # sqlite calls these from inside the statement, in the worker thread running it.
    def _authorize(self, action: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None) -> int:
        if action in _ALLOWED:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_PRAGMA and arg1 is not None and arg1.lower() in READ_PRAGMAS:
            return sqlite3.SQLITE_OK  # table_info(name) passes the table as arg2: still a read
        kind = _ACTION_NAMES.get(action, f"action {action}")
        self._guard.refused.append(kind + (f" ({arg1})" if arg1 else ""))
        return sqlite3.SQLITE_DENY

    def _progress(self) -> int:
        return 1 if time.monotonic() > self._guard.deadline else 0

    def _run(self, sql: str, max_rows: int, timeout_s: float) -> QueryResult:
        self._guard = _Guard(deadline=time.monotonic() + timeout_s)
        t0 = time.perf_counter()
        try:
            cur = self._conn.execute(sql)
            columns = [d[0] for d in cur.description] if cur.description else []
            rows = cur.fetchmany(max_rows + 1) if columns else []
            cur.close()
        except sqlite3.DatabaseError as exc:
            if self._guard.refused:
                denied = ", ".join(dict.fromkeys(self._guard.refused))
                raise QueryRefused(f"refused: this database is read-only, and only reading statements may run "
                                   f"(SELECT, WITH ... SELECT, PRAGMA table_info); this statement needs {denied}") from exc
            if isinstance(exc, sqlite3.OperationalError) and "interrupt" in str(exc).lower():
                raise QueryTimeout(f"timeout: the query ran past the {timeout_s:g} s limit and was stopped; "
                                   "make it cheaper (filter early, avoid cross joins)") from exc
            raise
        finally:
            self._guard.deadline = float("inf")
            if self._conn.in_transaction:
                self._conn.rollback()
        truncated = len(rows) > max_rows
        return QueryResult(columns=columns, rows=[tuple(r) for r in rows[:max_rows]], truncated=truncated,
                           duration_s=time.perf_counter() - t0)

    async def execute(self, sql: str, *, max_rows: int | None = None, timeout_s: float | None = None) -> QueryResult:
        if self._closed:
            raise RuntimeError("the database connection is closed")
        async with self._lock:
            return await anyio.to_thread.run_sync(
                self._run, sql, self.max_rows if max_rows is None else max_rows,
                self.timeout_s if timeout_s is None else timeout_s)

    async def schema(self) -> str:
        """The CREATE statements of the tables and views, for the prompt."""
        result = await self.execute("SELECT sql FROM sqlite_master WHERE type IN ('table', 'view') "
                                    "AND name NOT LIKE 'sqlite_%' AND sql IS NOT NULL ORDER BY name",
                                    max_rows=10_000)
        return "\n".join(str(r[0]).strip() + ";" for r in result.rows)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        async with self._lock:
            await anyio.to_thread.run_sync(self._conn.close)

