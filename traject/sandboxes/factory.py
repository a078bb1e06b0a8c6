"""Choosing a backend: Docker when a daemon answers, else the local (non-isolating) backend."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio

from traject.sandboxes.config import SandboxConfig
from traject.sandboxes.docker_client import daemon_available
from traject.sandboxes.executor_client import ExecutorSandbox

if TYPE_CHECKING:
    from traject.types import Task

log = logging.getLogger(__name__)

_daemon_checked: bool | None = None


async def docker_available(*, refresh: bool = False) -> bool:
    """Whether a Docker daemon answers (checked once per process unless ``refresh``)."""
    global _daemon_checked
    if _daemon_checked is None or refresh:
        _daemon_checked = await anyio.to_thread.run_sync(daemon_available)
    return _daemon_checked


async def resolve_backend(config: SandboxConfig) -> str:
    if config.backend != "auto":
        return config.backend
    if await docker_available():
        return "docker"
    log.warning("no Docker daemon answers: falling back to LocalSandbox, which does NOT isolate")
    return "local"


async def open_sandbox(config: SandboxConfig | None = None) -> ExecutorSandbox:
    """A fresh sandbox for ``config`` (the caller closes it: ``async with await open_sandbox()``)."""
    config = config or SandboxConfig()
    backend = await resolve_backend(config)
    if backend == "docker":
        from traject.sandboxes.docker_sandbox import DockerSandbox

        return await DockerSandbox.create(config)
    from traject.sandboxes.local_sandbox import LocalSandbox

    return await LocalSandbox.create(config)


def sandbox_factory(
    config: SandboxConfig | None = None,
    *,
    image_for: Callable[[Task], str | None] | None = None,
) -> Callable[[Task], Awaitable[ExecutorSandbox]]:
    """A ``ToolEnv(sandbox=...)`` factory: one fresh sandbox per episode.

    ``image_for(task)`` may pick a per-task image (e.g. a derived image with the task's repo);
    returning None keeps ``config.image``. For warm starts use ``SandboxPool.factory()``.
    """
    base = config or SandboxConfig()

    async def make(task: Task) -> ExecutorSandbox:
        image = image_for(task) if image_for is not None else None
        return await open_sandbox(base.model_copy(update={"image": image}) if image else base)

    return make
