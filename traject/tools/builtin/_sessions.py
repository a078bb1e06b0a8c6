"""Per-episode persistent sessions (the python and bash tools keep one each in ``ctx.state``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from dataclasses import dataclass

from traject.sandboxes.base import InteractiveSandbox, SandboxSession
from traject.sandboxes.executor_client import new_marker
from traject.tools.context import ToolContext


def require_interactive(ctx: ToolContext, tool: str) -> InteractiveSandbox:
    sandbox = ctx.require_sandbox()
    if not isinstance(sandbox, InteractiveSandbox):
        raise TypeError(
            f"the {tool} tool needs an InteractiveSandbox (a workspace and sessions), such as "
            f"traject's DockerSandbox or LocalSandbox; {type(sandbox).__name__} is not one"
        )
    return sandbox


@dataclass
class EpisodeSession:
    sandbox: InteractiveSandbox
    session: SandboxSession
    marker: str  # ends each answer of the session; random so that output cannot fake it
    restarted: bool = False


async def episode_session(
    ctx: ToolContext,
    key: str,
    start: Callable[[InteractiveSandbox, str], Awaitable[SandboxSession]],
    *,
    tool: str,
) -> EpisodeSession:
    """The episode's session under ``key``, started on first use or after it exited."""
    sandbox = require_interactive(ctx, tool)
    entry = ctx.state.get(key)
    if isinstance(entry, EpisodeSession) and entry.sandbox is sandbox and not entry.session.closed:
        entry.restarted = False
        return entry
    marker = new_marker()
    entry = EpisodeSession(sandbox, await start(sandbox, marker), marker, restarted=entry is not None)
    ctx.state[key] = entry
    return entry


def exit_note(what: str, *, exit_code: int | None, oom_killed: bool, timed_out: bool) -> str:
    if oom_killed:
        reason = "killed: out of memory (the sandbox's memory limit was reached)"
    elif timed_out:
        reason = "it did not stop when interrupted after the timeout, so it was killed"
    elif exit_code is not None and exit_code > 128:
        reason = f"killed by signal {exit_code - 128}"
    else:
        reason = f"exit code {exit_code}"
    return f"[the {what} exited ({reason}); its state is lost: the next call starts a fresh one]"
