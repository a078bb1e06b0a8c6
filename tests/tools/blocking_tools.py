"""Tools that block forever, and an env of them (``--env blocking_tools:ENTRY``), for the tests
that a blocking tool can always be stopped. A worker process imports this module by name."""

from __future__ import annotations

import os
import time
from pathlib import Path

from traject.environments import ToolEnv
from traject.environments.registry import EnvEntry
from traject.tools import tool
from traject.types import Message, Task, ToolCall


def _mark(where: str | None) -> None:
    if where:
        Path(where).write_text(str(os.getpid()))


@tool
def sleep_forever(marker: str = "") -> str:
    """Block the calling thread for hours.

    Args:
        marker: A file to write this process's id to before blocking.
    """
    _mark(marker)
    time.sleep(10_000)
    return "woke up"


@tool(isolate=True)
def sleep_forever_isolated(marker: str = "") -> str:
    """Block a worker process for hours.

    Args:
        marker: A file to write the worker's process id to before blocking.
    """
    _mark(marker)
    time.sleep(10_000)
    return "woke up"


@tool(isolate=True)
def add_isolated(a: int, b: int) -> str:
    """Add in a worker process.

    Args:
        a: One addend.
        b: The other.
    """
    return str(a + b)


def make_env(tool_timeout_s: float = 3600.0) -> ToolEnv:
    return ToolEnv([sleep_forever, sleep_forever_isolated], name="blocking", tool_timeout_s=tool_timeout_s)


def tasks(split: str = "test", n: int = 2, seed: int = 0) -> list[Task]:
    return [Task(id=f"b{i}", prompt="block") for i in range(n)]


ENTRY = EnvEntry(name="blocking", make=make_env, tasks=tasks, description="tools that block forever")


def block(messages: list[Message], tools: object) -> Message:
    """A scripted policy: call $BLOCKING_TOOL (sleep_forever), marking the file in $BLOCKING_MARKER."""
    return Message.assistant("", tool_calls=[ToolCall(name=os.environ.get("BLOCKING_TOOL", "sleep_forever"),
                                                      arguments={"marker": os.environ.get("BLOCKING_MARKER", "")})])
