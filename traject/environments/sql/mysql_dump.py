"""A MySQL dump (``mysqldump``'s output, or InterCode's ``ic_*.sql``) turned into SQLite files.

InterCode ships Spider and BIRD as one MySQL dump holding every database (``CREATE DATABASE``,
``USE``, ``CREATE TABLE``, ``INSERT``) plus a JSON file of questions. traject's SQL env runs
read-only SQLite, so each database of the dump becomes ``<out>/<db>/<db>.sqlite``.

Statements are split here (quotes, backslash escapes and comments respected), then each is
parsed with sqlglot's MySQL dialect and written in SQLite's; an ``INSERT`` whose rows are plain
literals (nearly all of a dump's bytes) is read by a literal scanner here and inserted with
bound parameters instead of being parsed, with sqlglot as the fallback. What SQLite cannot hold is dropped
on the way, never the data: secondary indexes and unique keys, column comments, character sets,
collations, ``ON UPDATE``, ``AUTO_INCREMENT``; ``ENUM``/``SET`` become ``TEXT``. Server
statements (``SET``, ``LOCK TABLES``, ``CREATE USER``, ``GRANT``, ``/*!...*/`` conditional
comments) are skipped.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class DumpError(ValueError):
    """A statement of the dump that could not be carried into SQLite; the message names it."""


def split_statements(text: str) -> Iterator[tuple[int, str]]:
    """``(line, statement)`` for each ``;``-terminated statement, comments removed.

    >>> list(split_statements("-- hi\\nUSE `a`; /* x; */ INSERT INTO t VALUES ('a;\\\\'b', \\"c\\");"))
    [(2, 'USE `a`'), (2, 'INSERT INTO t VALUES (\\'a;\\\\\\'b\\', "c")')]
    """
    out: list[str] = []
    i, n, line, start_line = 0, len(text), 1, 1
    while i < n:
        ch = text[i]
        if ch in "'\"`":
            j = i + 1
            while j < n:
                c = text[j]
                if c == "\\" and ch != "`":
                    j += 2
                    continue
                if c == ch:
                    if j + 1 < n and text[j + 1] == ch:  # a doubled quote inside the literal
                        j += 2
                        continue
                    break
                j += 1
            chunk = text[i:j + 1]
            out.append(chunk)
            line += chunk.count("\n")
            i = j + 1
            continue
        if ch == "#" or (ch == "-" and text.startswith("--", i) and (i + 2 >= n or text[i + 2] in " \t\r\n")):
            j = text.find("\n", i)
            i = n if j == -1 else j
            continue
        if ch == "/" and text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j == -1 else j + 2
            line += text.count("\n", i, j)
            out.append(" ")
            i = j
            continue
        if ch == ";":
            stmt = "".join(out).strip()
            if stmt:
                yield start_line, stmt
            out = []
            i += 1
            start_line = line
            continue
        if ch == "\n":
            line += 1
            if not "".join(out).strip():
                start_line = line
        out.append(ch)
        i += 1
    stmt = "".join(out).strip()
    if stmt:
        yield start_line, stmt


_DROPPED_CONSTRAINTS = ("CommentColumnConstraint", "CharacterSetColumnConstraint", "CollateColumnConstraint",
                        "OnUpdateColumnConstraint", "AutoIncrementColumnConstraint")


def _to_sqlite(tree: Any) -> str:
    """One parsed CREATE TABLE / INSERT / DROP TABLE in SQLite's dialect."""
    from sqlglot import exp

    if isinstance(tree, exp.Create) and isinstance(tree.this, exp.Schema):
        for item in list(tree.this.expressions):
            if isinstance(item, (exp.IndexColumnConstraint, exp.UniqueColumnConstraint)):
                item.pop()
            elif isinstance(item, exp.ColumnDef):
                for constraint in list(item.args.get("constraints") or []):
                    if type(constraint.args.get("kind")).__name__ in _DROPPED_CONSTRAINTS:
                        constraint.pop()
                kind = item.args.get("kind")
                if isinstance(kind, exp.DataType) and kind.this in (exp.DataType.Type.ENUM, exp.DataType.Type.SET):
                    item.set("kind", exp.DataType.build("TEXT"))
    for intro in list(tree.find_all(exp.Introducer)):  # _binary 'x', _utf8mb4 'y'
        intro.replace(intro.expression)
    return tree.sql(dialect="sqlite", comments=False)


_NAME = r"(?:`(?:[^`]|``)+`|[A-Za-z_$][\w$]*)"
_INSERT_HEAD = re.compile(rf"(INSERT(?:\s+IGNORE)?|REPLACE)\s+INTO\s+({_NAME})\s*"
                          rf"(\(\s*{_NAME}(?:\s*,\s*{_NAME})*\s*\))?\s*VALUES\s*", re.I)
_LITERAL = re.compile(r"""\s*(?:
    (?P<s>'(?:[^'\\]|\\.|'')*')
  | (?P<d>"(?:[^"\\]|\\.|"")*")
  | (?P<num>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)(?![\w.])
  | (?P<null>NULL)\b | (?P<true>TRUE)\b | (?P<false>FALSE)\b
  | (?P<hex>0x[0-9A-Fa-f]+)\b
)\s*""", re.X | re.S | re.I)
_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a", "%": "\\%", "_": "\\_"}
_ESCAPE = re.compile(r"\\(.)", re.S)


def _unquote(body: str, quote: str) -> str:
    body = body.replace(quote * 2, quote)
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), body) if "\\" in body else body


def _ident(name: str) -> str:
    bare = name[1:-1].replace("``", "`") if name.startswith("`") else name
    return '"' + bare.replace('"', '""') + '"'


def fast_insert(stmt: str) -> tuple[str, list[tuple[Any, ...]]] | None:
    r"""``(sqlite INSERT with ? placeholders, rows)`` when every value is a plain literal, else None.

    >>> fast_insert(r"INSERT INTO `t` VALUES (1,'O\'Brien',NULL),(2.5,'x',0x41)")
    ('INSERT INTO "t" VALUES (?, ?, ?)', [(1, "O'Brien", None), (2.5, 'x', b'A')])
    >>> fast_insert("INSERT INTO `t` VALUES (NOW())") is None
    True
    """
    head = _INSERT_HEAD.match(stmt)
    if head is None:
        return None
    verb = head.group(1).upper().split()
    action = {"INSERT": "INSERT", "IGNORE": "INSERT OR IGNORE", "REPLACE": "INSERT OR REPLACE"}[verb[-1]]
    columns = ""
    if head.group(3):
        names = re.findall(_NAME, head.group(3))
        columns = " (" + ", ".join(_ident(n) for n in names) + ")"
    rows: list[tuple[Any, ...]] = []
    pos, n = head.end(), len(stmt)
    while True:
        if pos >= n or stmt[pos] != "(":
            return None
        pos += 1
        row: list[Any] = []
        while True:
            m = _LITERAL.match(stmt, pos)
            if m is None:
                return None
            kind = m.lastgroup
            text = m.group(kind)
            if kind == "s" or kind == "d":
                row.append(_unquote(text[1:-1], text[0]))
            elif kind == "num":
                row.append(float(text) if any(c in text for c in ".eE") else int(text))
            elif kind == "hex":
                row.append(bytes.fromhex(text[2:] if len(text) % 2 == 0 else "0" + text[2:]))
            else:
                row.append({"null": None, "true": 1, "false": 0}[kind])
            pos = m.end()
            if pos < n and stmt[pos] == ",":
                pos += 1
                continue
            if pos < n and stmt[pos] == ")":
                pos += 1
                break
            return None
        if rows and len(row) != len(rows[0]):
            return None
        rows.append(tuple(row))
        while pos < n and stmt[pos].isspace():
            pos += 1
        if pos >= n:
            break
        if stmt[pos] != ",":
            return None
        pos += 1
        while pos < n and stmt[pos].isspace():
            pos += 1
    marks = ", ".join("?" * len(rows[0]))
    return f"{action} INTO {_ident(head.group(2))}{columns} VALUES ({marks})", rows


def convert_dump(dump: str | Path, out_dir: str | Path, *, default_db: str | None = None) -> dict[str, Path]:
    """Write each database of ``dump`` to ``out_dir/<db>/<db>.sqlite``; return ``{db: path}``.

    Statements before any ``USE`` go to ``default_db`` (a single-database dump). The files are
    written into a temporary directory and moved into place at the end, so a failed conversion
    leaves nothing half-written.
    """
    try:
        import sqlglot
        from sqlglot import exp
        from sqlglot.errors import SqlglotError
    except ImportError as exc:
        raise ImportError("reading a MySQL dump needs sqlglot: pip install 'traject[sql]'") from exc

    dump, out_dir = Path(dump), Path(out_dir)
    text = dump.read_text(encoding="utf-8", errors="replace")
    tmp = out_dir.with_name(out_dir.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    conns: dict[str, sqlite3.Connection] = {}
    current = default_db
    quiet = logging.getLogger("sqlglot")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "Unsupported property engineproperty" on every CREATE TABLE
    try:
        for line, stmt in split_statements(text):
            head = stmt.split(None, 2)
            verb = head[0].upper()
            if verb not in ("CREATE", "USE", "INSERT", "REPLACE", "DROP"):
                continue
            if verb == "CREATE" and len(head) > 1 and head[1].upper() not in ("TABLE", "DATABASE", "SCHEMA"):
                continue  # CREATE USER / INDEX / VIEW: no data
            fast = fast_insert(stmt) if verb in ("INSERT", "REPLACE") else None
            if fast is not None:
                if current is None:
                    raise DumpError(f"{dump}, line {line}: an INSERT before any USE or CREATE DATABASE "
                                    "(pass default_db= for a single-database dump)")
                conn = conns.get(current) or _connect(conns, tmp, current)
                try:
                    conn.executemany(*fast)
                except sqlite3.Error as exc:
                    raise DumpError(f"{dump}, line {line}: database {current!r}: SQLite refused "
                                    f"{stmt[:80]!r}...: {exc}") from exc
                continue
            try:
                tree = sqlglot.parse_one(stmt, read="mysql")
            except SqlglotError as exc:
                raise DumpError(f"{dump}, line {line}: cannot parse {stmt[:60]!r}...: {str(exc).splitlines()[0]}") from exc
            if isinstance(tree, exp.Use) or (isinstance(tree, exp.Create) and tree.kind in ("DATABASE", "SCHEMA")):
                current = tree.this.name
                if isinstance(tree, exp.Create) or current not in conns:
                    _connect(conns, tmp, current)
                continue
            if isinstance(tree, exp.Drop) and tree.kind != "TABLE":
                continue
            if current is None:
                raise DumpError(f"{dump}, line {line}: a table statement before any USE or CREATE DATABASE "
                                "(pass default_db= for a single-database dump)")
            conn = conns.get(current) or _connect(conns, tmp, current)
            sql = _to_sqlite(tree)
            try:
                conn.execute(sql)
            except sqlite3.Error as exc:
                raise DumpError(f"{dump}, line {line}: database {current!r}: SQLite refused {sql[:80]!r}...: "
                                f"{exc}") from exc
        for conn in conns.values():
            conn.commit()
    finally:
        quiet.setLevel(level)
        for conn in conns.values():
            conn.close()
    try:
        tmp.rename(out_dir)
    except OSError:  # another process converted the same dump meanwhile: keep its files
        shutil.rmtree(tmp, ignore_errors=True)
    return {name: out_dir / name / f"{name}.sqlite" for name in conns}


def _connect(conns: dict[str, sqlite3.Connection], root: Path, name: str) -> sqlite3.Connection:
    if "/" in name or "\\" in name or name in ("", ".", ".."):
        raise DumpError(f"database name {name!r} cannot be a file name")
    if name not in conns:
        (root / name).mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(root / name / f"{name}.sqlite")
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conns[name] = conn
    return conns[name]
