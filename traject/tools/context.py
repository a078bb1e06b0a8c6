"""What a tool sees of the episode it runs in."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from traject.types import Task

if TYPE_CHECKING:
    from traject.sandboxes.base import Sandbox


@dataclass
class ToolContext:
    """Per-episode context handed to every tool call.

    ``state`` is the episode's scratch space, shared by all tools of the episode and dropped
    when the episode ends. ``sandbox`` is set when the env was given one.
    """

    task: Task
    episode_id: str
    state: dict[str, Any] = field(default_factory=dict)
    sandbox: Sandbox | None = None
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("traject.tools"))

    def require_sandbox(self) -> Sandbox:
        if self.sandbox is None:
            raise RuntimeError(
                "this tool needs a sandbox, but the env has none: give the env `sandbox=...` "
                "(e.g. ToolEnv(..., sandbox='docker'))"
            )
        return self.sandbox
