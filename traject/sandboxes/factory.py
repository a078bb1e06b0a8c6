"""Choosing a backend. It fails closed: Docker, or a clear error at start; the local backend
(which does not isolate) only when it is named (``backend: local``) or allowed by
``TRAJECT_ALLOW_LOCAL_SANDBOX=1``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio

from traject.sandboxes.base import SandboxError
from traject.sandboxes.config import SandboxConfig
from traject.sandboxes.executor_client import ExecutorSandbox
from traject.sandboxes.hosts import configured_hosts, docker_hosts, local_allowed

if TYPE_CHECKING:
    from traject.types import Task

log = logging.getLogger(__name__)


async def docker_available(*, refresh: bool = False, config: SandboxConfig | None = None) -> bool:
    """Whether a configured Docker host answers (checked once per process unless ``refresh``)."""
    urls = configured_hosts(config or SandboxConfig())
    return bool(await anyio.to_thread.run_sync(lambda: docker_hosts.probe_sync(urls, force=refresh)))


_decided: dict[tuple[str, tuple[str, ...], bool], str] = {}


def preflight(config: SandboxConfig) -> str:
    """The backend ``config`` gets, decided once per process at start: ``docker`` when a
    configured host answers (unreachable ones are named in one log line each), ``local`` when
    named or allowed; else SandboxError, before any episode runs. The first call pings (blocking,
    call it at start); later ones return the decision (hosts that go down mid-run are placement's
    business), so an env may call it in its constructor."""
    if config.backend == "local":
        return "local"
    urls = configured_hosts(config)
    key = (config.backend, urls, local_allowed())
    if key not in _decided:
        _decided[key] = _decide(config, urls)
    return _decided[key]


def _decide(config: SandboxConfig, urls: tuple[str, ...]) -> str:
    if config.backend == "auto" and local_allowed():
        if docker_hosts.probe_sync(urls):
            return "docker"
        log.warning("no Docker host answers and TRAJECT_ALLOW_LOCAL_SANDBOX=1: using LocalSandbox, "
                    "which does NOT isolate")
        return "local"
    docker_hosts.require_sync(urls)
    return "docker"


async def resolve_backend(config: SandboxConfig) -> str:
    return await anyio.to_thread.run_sync(preflight, config)


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

    preflight(base)  # fail closed now, at start, not in the first episode
    return make
