"""The ``python`` tool: a persistent Python interpreter inside the episode's sandbox."""

from __future__ import annotations

import functools
import secrets
import signal
from pathlib import Path

from traject.sandboxes.base import InteractiveSandbox, SandboxSession
from traject.tools.base import ToolOutput
from traject.tools.builtin._sessions import episode_session, exit_note
from traject.tools.context import ToolContext
from traject.tools.decorator import FunctionTool

STATE_KEY = "traject.tools.python.session"


@functools.cache
def worker_source() -> str:
    return Path(__file__).with_name("python_worker.py").read_text(encoding="utf-8")


def python_tool(*, timeout_s: float = 60.0, name: str = "python", interpreter: str = "python3") -> FunctionTool:
    """A ``python`` tool whose cells may run for ``timeout_s`` seconds each."""

    async def python(ctx: ToolContext, code: str) -> ToolOutput:
        """Run Python code in a persistent interpreter inside the sandbox. Variables, imports and
        functions persist between calls; the value of a final expression is printed. stdout and
        stderr are returned together. A cell that runs too long is interrupted.

        Args:
            code: The Python source to run.
        """
        async def start(sandbox: InteractiveSandbox, marker: str) -> SandboxSession:
            return await sandbox.open_session(
                [interpreter, "-u", "-I", "-c", worker_source(), marker],
                interrupt_signal=signal.SIGINT,
            )

        entry = await episode_session(ctx, STATE_KEY, start, tool=name)
        data = code.encode("utf-8")
        cell_id = secrets.token_hex(4)
        result = await entry.session.run(f"{len(data)} {cell_id}\n".encode() + data,
                                         marker=f"{entry.marker}{cell_id}:", timeout=timeout_s)
        text = result.output
        if entry.restarted:
            text = "[a fresh Python interpreter was started: earlier variables are gone]\n" + text
        notes = []
        if result.exited:
            notes.append(exit_note("Python interpreter", exit_code=result.exit_code,
                                   oom_killed=result.oom_killed, timed_out=result.timed_out))
        elif result.timed_out:
            notes.append(f"[timed out after {timeout_s:g}s: the cell was interrupted; "
                         "the interpreter and its variables are kept]")
        if notes:
            text = (text.rstrip("\n") + "\n" if text.strip() else "") + "\n".join(notes)
        is_error = result.exited or result.timed_out or result.status != "ok"
        return ToolOutput(
            content=text if text else "(no output)",
            is_error=is_error,
            metadata={"status": result.status, "timed_out": result.timed_out, "exited": result.exited,
                      "truncated": result.truncated, "oom_killed": result.oom_killed},
        )

    # the env's own limit only backstops ours (interrupting takes up to a few seconds)
    return FunctionTool(python, name=name, timeout_s=timeout_s + 15.0)


python = python_tool()
