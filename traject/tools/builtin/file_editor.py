"""The ``file_editor`` tool: view, create, str_replace and insert, confined to the workspace.

Paths are relative to the sandbox's workspace. Absolute paths and ``..`` are refused, and so
is a path that resolves (through symlinks) outside the workspace.
"""

from __future__ import annotations

import posixpath
from typing import Literal

from traject.sandboxes.base import InteractiveSandbox
from traject.tools.builtin._sessions import require_interactive
from traject.tools.base import ToolOutput
from traject.tools.context import ToolContext
from traject.tools.decorator import FunctionTool

MAX_VIEW_CHARS = 16_000
SNIPPET_LINES = 4


class EditorError(Exception):
    """A refused or failed edit; the message is the observation the model reads."""


def workspace_path(workspace: str, path: str) -> str:
    """``path`` (relative to the workspace) as an absolute path, refusing escapes."""
    if not path or not path.strip():
        raise EditorError("give a path relative to the workspace, e.g. src/app.py")
    if "\x00" in path:
        raise EditorError("the path contains a NUL byte")
    if path.startswith("/") or path.startswith("~"):
        raise EditorError(f"absolute paths are refused: {path!r}; give a path relative to the "
                          f"workspace ({workspace}), e.g. {path.lstrip('/~').split('/', 1)[-1] or 'file.txt'}")
    if ".." in path.split("/"):
        raise EditorError(f"paths with '..' are refused: {path!r}; stay inside the workspace")
    full = posixpath.normpath(posixpath.join(workspace, path))
    if full != workspace and not full.startswith(workspace.rstrip("/") + "/"):
        raise EditorError(f"the path {path!r} is outside the workspace")
    return full


async def _resolve(sandbox: InteractiveSandbox, path: str) -> str:
    """Lexical checks, then symlinks resolved inside the sandbox must stay in the workspace."""
    workspace = sandbox.workspace
    full = workspace_path(workspace, path)
    result = await sandbox.exec(["realpath", "-m", "--", workspace, full], timeout=10)
    resolved = result.stdout.splitlines()
    if result.exit_code != 0 or len(resolved) != 2:
        raise EditorError(f"cannot resolve {path!r}: {result.stderr.strip()}")
    ws_real, real = resolved
    if real != ws_real and not real.startswith(ws_real.rstrip("/") + "/"):
        raise EditorError(f"the path {path!r} leads outside the workspace (through a symlink)")
    return full


async def _kind(sandbox: InteractiveSandbox, full: str) -> str:
    result = await sandbox.exec(["stat", "-c", "%F", "--", full], timeout=10)
    if result.exit_code != 0:
        return "missing"
    return "directory" if "directory" in result.stdout else "file"


async def _read_text(sandbox: InteractiveSandbox, full: str, path: str) -> str:
    try:
        data = await sandbox.read_file(full)
    except FileNotFoundError:
        raise EditorError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise EditorError(f"{path} is a directory") from None
    except OSError as exc:
        raise EditorError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise EditorError(f"{path} is not UTF-8 text; the editor only edits text files") from None


async def _write_text(sandbox: InteractiveSandbox, full: str, path: str, text: str) -> None:
    try:
        await sandbox.write_file(full, text.encode("utf-8"))
    except OSError as exc:
        raise EditorError(f"cannot write {path}: {exc.strerror or exc}") from None


def numbered(lines: list[str], start: int) -> str:
    return "\n".join(f"{i:6d}\t{line}" for i, line in enumerate(lines, start))


def _clip(text: str) -> str:
    if len(text) <= MAX_VIEW_CHARS:
        return text
    return text[:MAX_VIEW_CHARS] + ("\n[... output clipped: view a smaller range with view_range "
                                    "[start, end] ...]")


def _snippet(text: str, first_line: int, n_new_lines: int, path: str) -> str:
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    lo = max(1, first_line - SNIPPET_LINES)
    hi = min(len(lines), first_line + n_new_lines + SNIPPET_LINES)
    return f"Edited {path}. Lines {lo}-{hi} now read:\n" + numbered(lines[lo - 1 : hi], lo)


async def _view(sandbox: InteractiveSandbox, full: str, path: str, view_range: list[int] | None) -> str:
    kind = await _kind(sandbox, full)
    if kind == "missing":
        raise EditorError(f"no such file or directory: {path}")
    if kind == "directory":
        if view_range:
            raise EditorError("view_range applies to files, not directories")
        result = await sandbox.exec(
            ["find", full, "-maxdepth", "2", "-not", "-path", "*/.*"], timeout=20
        )
        entries = sorted(posixpath.relpath(p, sandbox.workspace) for p in result.stdout.splitlines() if p)
        return _clip(f"Files and directories in {path}, two levels deep (hidden ones omitted):\n"
                     + "\n".join(entries))
    text = await _read_text(sandbox, full, path)
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    start, end = 1, len(lines)
    if view_range:
        if len(view_range) != 2:
            raise EditorError("view_range takes two numbers: [start_line, end_line] (end -1 means the end)")
        start, end = view_range
        if end == -1:
            end = len(lines)
        if not (1 <= start <= max(len(lines), 1)) or end < start or end > len(lines):
            raise EditorError(f"view_range {view_range} is outside the file's lines 1-{len(lines)}")
    if not lines:
        return f"{path} is empty"
    return _clip(numbered(lines[start - 1 : end], start))


async def _create(sandbox: InteractiveSandbox, full: str, path: str, file_text: str | None) -> str:
    if file_text is None:
        raise EditorError("create needs file_text")
    kind = await _kind(sandbox, full)
    if kind != "missing":
        raise EditorError(f"{path} already exists; change it with str_replace or insert")
    await _write_text(sandbox, full, path, file_text)
    return f"Created {path} ({len(file_text.splitlines())} lines)"


async def _str_replace(sandbox: InteractiveSandbox, full: str, path: str, old_str: str | None, new_str: str | None) -> str:
    if not old_str:
        raise EditorError("str_replace needs old_str: the exact text to replace (it must occur once)")
    new_str = new_str or ""
    text = await _read_text(sandbox, full, path)
    count = text.count(old_str)
    if count == 0:
        raise EditorError(f"old_str was not found in {path}; it must match the file exactly, "
                          "whitespace included (view the file to copy it)")
    if count > 1:
        lines, pos = [], -1
        while (pos := text.find(old_str, pos + 1)) >= 0:
            lines.append(text.count("\n", 0, pos) + 1)
        raise EditorError(f"old_str occurs {count} times in {path} (at lines {lines}); "
                          "include more context so that it is unique")
    at = text.index(old_str)
    new_text = text.replace(old_str, new_str, 1)
    await _write_text(sandbox, full, path, new_text)
    return _snippet(new_text, text.count("\n", 0, at) + 1, new_str.count("\n"), path)


async def _insert(sandbox: InteractiveSandbox, full: str, path: str, insert_line: int | None, new_str: str | None) -> str:
    if insert_line is None or new_str is None:
        raise EditorError("insert needs insert_line (0 inserts at the top) and new_str")
    text = await _read_text(sandbox, full, path)
    lines = text.split("\n")
    trailing = text.endswith("\n")
    if trailing:
        lines.pop()
    if not 0 <= insert_line <= len(lines):
        raise EditorError(f"insert_line {insert_line} is outside 0-{len(lines)} (the file has {len(lines)} lines)")
    new_lines = new_str.split("\n")
    if new_str.endswith("\n"):
        new_lines.pop()
    lines[insert_line:insert_line] = new_lines
    new_text = "\n".join(lines) + ("\n" if trailing or not text else "")
    await _write_text(sandbox, full, path, new_text)
    return _snippet(new_text, insert_line + 1, len(new_lines), path)


def file_editor_tool(*, name: str = "file_editor", timeout_s: float = 60.0) -> FunctionTool:
    async def file_editor(
        ctx: ToolContext,
        command: Literal["view", "create", "str_replace", "insert"],
        path: str,
        file_text: str | None = None,
        old_str: str | None = None,
        new_str: str | None = None,
        insert_line: int | None = None,
        view_range: list[int] | None = None,
    ) -> ToolOutput:
        """View, create and edit text files in the workspace. Paths are relative to the workspace.

        Args:
            command: view (a file with line numbers, or a directory listing), create (a new file),
                str_replace (replace old_str, which must occur exactly once, by new_str), or insert
                (new_str after line insert_line; 0 is the top of the file).
            path: File or directory, relative to the workspace, e.g. src/app.py.
            file_text: Content of the file to create.
            old_str: Exact text to replace (str_replace).
            new_str: Replacement text (str_replace) or text to insert (insert).
            insert_line: Line after which new_str is inserted (insert).
            view_range: [start_line, end_line] to view part of a file; end_line -1 means the end.
        """
        sandbox = require_interactive(ctx, "file_editor")
        try:
            full = await _resolve(sandbox, path)
            if command == "view":
                text = await _view(sandbox, full, path, view_range)
            elif command == "create":
                text = await _create(sandbox, full, path, file_text)
            elif command == "str_replace":
                text = await _str_replace(sandbox, full, path, old_str, new_str)
            else:
                text = await _insert(sandbox, full, path, insert_line, new_str)
        except EditorError as exc:
            return ToolOutput(content=f"Error: {exc}", is_error=True)
        return ToolOutput(content=text)

    return FunctionTool(file_editor, name=name, timeout_s=timeout_s)


file_editor = file_editor_tool()
