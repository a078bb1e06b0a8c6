"""Which episode is running, for code deep in a policy, tool or user simulator.

The agent loop sets it for the duration of an episode; anyio tasks inherit it, so concurrent
episodes each see their own.

>>> current_episode() is None
True
"""

from __future__ import annotations

import hashlib
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anyio.abc import TaskGroup


@dataclass(frozen=True)
class EpisodeInfo:
    episode_id: str
    task_id: str
    sample_index: int
    seed: int


_current: ContextVar[EpisodeInfo | None] = ContextVar("traject_episode", default=None)
_services: ContextVar[TaskGroup | None] = ContextVar("traject_services", default=None)


def service_group() -> TaskGroup | None:
    """The running episode's task group for long-lived helpers (an MCP connection, a browser
    session): a helper started here lives in its own task, so the async context managers it
    enters are entered and exited in that task, whatever cancel scopes the episode's set-up
    and clean-up run under. None outside the agent loop."""
    return _services.get()


def set_service_group(tg: TaskGroup | None) -> object:
    return _services.set(tg)


def reset_service_group(token: object) -> None:
    _services.reset(token)  # type: ignore[arg-type]


def current_episode() -> EpisodeInfo | None:
    return _current.get()


def set_episode(info: EpisodeInfo | None) -> object:
    return _current.set(info)


def reset_episode(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


def episode_seed(base_seed: int, task_id: str, sample_index: int, attempt: int = 0) -> int:
    """A stable 63-bit seed for one attempt at one sample of one task."""
    digest = hashlib.blake2b(f"{base_seed}\0{task_id}\0{sample_index}\0{attempt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1
