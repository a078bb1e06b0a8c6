"""The ``bash`` tool: a persistent shell session inside the episode's sandbox."""

from __future__ import annotations

import secrets

from traject.sandboxes.base import InteractiveSandbox, SandboxSession
from traject.tools.base import ToolOutput
from traject.tools.builtin._sessions import episode_session, exit_note
from traject.tools.context import ToolContext
from traject.tools.decorator import FunctionTool

STATE_KEY = "traject.tools.bash.session"


def wrap_command(command: str, marker: str) -> bytes:
    """The shell text that runs ``command`` in the session and then prints the marker line.

    The command travels in a quoted here-document and runs through ``eval``: an incomplete
    command (an open quote) is a syntax error for ``eval`` instead of a shell that waits for
    more input, and the command's own stdin is /dev/null, never the session's protocol."""
    eof = f"__TRAJECT_EOF_{secrets.token_hex(8)}"
    # The wrapper hides itself from `set -x` (the user's setting is kept for their command),
    # and prints the marker in two halves so that no trace line can contain it whole.
    half = len(marker) // 2
    return (
        "{ __traject_x=${-//[^x]/}; set +x; } 2>/dev/null\n"
        f"IFS= read -r -d '' __traject_cmd <<'{eof}' || :\n{command}\n{eof}\n"
        'if [ -n "$__traject_x" ]; then set -x; fi\n'
        'eval "$__traject_cmd" </dev/null\n'
        # a simple command first: after a syntax error in eval, bash 5.2 misparses a `{` line
        "__traject_rc=$?\n"
        "{ __traject_x=${-//[^x]/}; set +x; } 2>/dev/null\n"
        f"printf '%s%s%d\\n' '{marker[:half]}' '{marker[half:]}' \"$__traject_rc\"\n"
        'if [ -n "$__traject_x" ]; then set -x; fi\n'
    ).encode("utf-8")


def bash_tool(*, timeout_s: float = 60.0, name: str = "bash", shell: str = "bash") -> FunctionTool:
    """A ``bash`` tool whose commands may run for ``timeout_s`` seconds each."""

    async def bash(ctx: ToolContext, command: str) -> ToolOutput:
        """Run a bash command in a persistent shell session inside the sandbox. The working
        directory, environment variables and shell functions persist between calls. stdout and
        stderr are returned together, followed by the exit code when it is not 0. A command that
        runs too long is killed (with the processes it started); the shell itself is kept.

        Args:
            command: The bash command (or script) to run.
        """

        async def start(sandbox: InteractiveSandbox, marker: str) -> SandboxSession:
            return await sandbox.open_session([shell, "--noprofile", "--norc"])

        entry = await episode_session(ctx, STATE_KEY, start, tool=name)
        # a fresh marker per call: a late line of an earlier call can never end this one
        marker = f"{entry.marker}{secrets.token_hex(4)}:"
        result = await entry.session.run(wrap_command(command, marker), marker=marker, timeout=timeout_s)
        text = result.output
        if entry.restarted:
            text = "[a fresh shell was started: earlier directory and variables are gone]\n" + text
        exit_code: int | None = None
        if result.status is not None and result.status.strip().lstrip("-").isdigit():
            exit_code = int(result.status)
        notes = []
        if result.exited:
            notes.append(exit_note("shell", exit_code=result.exit_code, oom_killed=result.oom_killed,
                                   timed_out=result.timed_out))
        elif result.timed_out:
            notes.append(f"[timed out after {timeout_s:g}s: the command and its processes were killed; "
                         "the shell is kept]")
        elif exit_code:
            notes.append(f"[exit code {exit_code}]")
        if notes:
            text = (text.rstrip("\n") + "\n" if text.strip() else "") + "\n".join(notes)
        return ToolOutput(
            content=text if text else "(no output)",
            is_error=bool(result.exited or result.timed_out or exit_code),
            metadata={"exit_code": exit_code, "timed_out": result.timed_out, "exited": result.exited,
                      "truncated": result.truncated, "oom_killed": result.oom_killed},
        )

    return FunctionTool(bash, name=name, timeout_s=timeout_s + 15.0)


bash = bash_tool()
