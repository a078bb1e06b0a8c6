"""SandboxPool: sandboxes created ahead of time, so that an episode starts without waiting.

A sandbox is handed to exactly one episode and never reused: closing it (``aclose``, which
ToolEnv does when the episode ends) destroys it, and the pool makes a fresh one in the
background. Reuse would need a proof that the sandbox was reset; a fresh container is that
proof.

Capacity: ``size`` warm sandboxes are kept ready; ``max_live`` bounds what this pool holds at
once (warm + leased + being created). Each sandbox also holds a run slot of its Docker host
(admission.py): ``host_cap`` (the config's, unless given here) bounds the sandboxes of every
process on this machine that talk to that host, and the pool spreads over the config's hosts.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from traject.sandboxes.base import SandboxError
from traject.sandboxes.config import SandboxConfig
from traject.sandboxes.executor_client import ExecutorSandbox
from traject.sandboxes.factory import open_sandbox

if TYPE_CHECKING:
    from traject.types import Task

log = logging.getLogger(__name__)

class SandboxPool:
    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        size: int = 4,
        max_live: int = 32,
        host_cap: int | None = None,
        refill_concurrency: int = 2,
        create: Callable[[], Awaitable[ExecutorSandbox]] | None = None,
    ) -> None:
        if size < 0 or max_live < 1 or refill_concurrency < 1:
            raise ValueError("SandboxPool needs size >= 0, max_live >= 1, refill_concurrency >= 1")
        self.config = config or SandboxConfig()
        if host_cap is not None:
            self.config = self.config.model_copy(update={"host_cap": host_cap})
        self.size = min(size, max_live)
        self.max_live = max_live
        self.host_cap = self.config.host_cap
        self.refill_concurrency = refill_concurrency
        self._create = create or (lambda: open_sandbox(self.config))
        self._ready: deque[ExecutorSandbox] = deque()
        self._leased: set[ExecutorSandbox] = set()
        self._live = 0
        self._creating = 0
        self._tg: Any = None
        # events belong to an event loop: made on entering the pool, not here
        self._wake: Any = None
        self._changed: Any = None
        self._waiting = 0
        self._closing = False
        self.last_error: BaseException | None = None
        self.stats = {"warm_hits": 0, "cold_creates": 0, "discarded": 0}

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> SandboxPool:
        self._wake = anyio.Event()
        self._changed = anyio.Event()
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._refill_loop)
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self._closing = True
        self._tg.cancel_scope.cancel()
        try:
            await self._tg.__aexit__(*exc_info)
        finally:
            with anyio.CancelScope(shield=True):
                await self._close_all()

    async def _close_all(self) -> None:
        to_close = list(self._ready) + list(self._leased)
        self._ready.clear()
        async with anyio.create_task_group() as tg:
            for sandbox in to_close:
                tg.start_soon(sandbox.aclose)

    async def wait_ready(self, n: int | None = None, timeout: float = 120.0) -> None:
        """Wait until ``n`` (default: ``size``) sandboxes are warm."""
        n = self.size if n is None else n
        with anyio.fail_after(timeout):
            while len(self._ready) < n:
                if self.last_error is not None and self._creating == 0 and not self._ready:
                    raise SandboxError(f"the pool cannot create sandboxes: {self.last_error}")
                await anyio.sleep(0.01)

    @property
    def ready(self) -> int:
        return len(self._ready)

    # ------------------------------------------------------------------ capacity

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def _release_capacity(self) -> None:
        self._live -= 1
        self._notify()
        self._wake.set()

    def _try_take_capacity(self) -> bool:
        if self._live < self.max_live:
            self._live += 1
            return True
        return False

    async def _wait_for_change(self) -> None:
        # closing sandboxes free capacity without telling this one: poll as well
        with anyio.move_on_after(0.05):
            await self._changed.wait()

    async def _create_counted(self) -> ExecutorSandbox:
        """Create a sandbox under capacity already taken; give it back if creation fails."""
        try:
            sandbox = await self._create()
        except BaseException:
            self._release_capacity()
            raise
        sandbox.add_close_callback(self._release_capacity)
        sandbox.add_close_callback(lambda: self._leased.discard(sandbox))
        return sandbox

    # ------------------------------------------------------------------ refill

    async def _refill_loop(self) -> None:
        failures = 0
        while True:
            while (len(self._ready) + self._creating < self.size
                   and self._creating < self.refill_concurrency):
                self._creating += 1
                self._tg.start_soon(self._refill_one)
            self._wake = anyio.Event()
            await self._wake.wait()
            if self.last_error is not None:
                failures += 1
                await anyio.sleep(min(5.0, 0.1 * 2 ** min(failures, 6)))
                self.last_error = None if self._ready else self.last_error
            else:
                failures = 0

    async def _refill_one(self) -> None:
        try:
            # acquirers that wait come first: refill only takes capacity nobody waits for
            while self._waiting or not self._try_take_capacity():
                await self._wait_for_change()
            sandbox = await self._create_counted()
        except Exception as exc:
            self.last_error = exc
            log.warning("sandbox pool: creating a warm sandbox failed: %s", exc)
            return
        finally:
            self._creating -= 1
            self._wake.set()
        if self._closing:
            await sandbox.aclose()
        else:
            self._ready.append(sandbox)
            self._notify()

    # ------------------------------------------------------------------ leasing

    async def acquire(self) -> ExecutorSandbox:
        """A sandbox no episode has used. Close it when done (its ``aclose``)."""
        if self._tg is None:
            raise RuntimeError("enter the pool first: `async with SandboxPool(...) as pool:`")
        while True:
            if self._closing:
                raise SandboxError("the sandbox pool is closed")
            while self._ready:
                sandbox = self._ready.popleft()
                self._wake.set()
                try:
                    await sandbox.ping(timeout=2.0)
                except SandboxError as exc:  # died while warm (killed, daemon restarted)
                    log.warning("sandbox pool: discarding a dead warm sandbox: %s", exc)
                    self.stats["discarded"] += 1
                    await sandbox.aclose()
                    continue
                self.stats["warm_hits"] += 1
                self._leased.add(sandbox)
                return sandbox
            if self._try_take_capacity():
                self.stats["cold_creates"] += 1
                self._wake.set()
                sandbox = await self._create_counted()
                self._leased.add(sandbox)
                return sandbox
            self._waiting += 1
            try:
                await self._wait_for_change()
            finally:
                self._waiting -= 1

    def factory(self) -> Callable[[Task], Awaitable[ExecutorSandbox]]:
        """A ``ToolEnv(sandbox=...)`` factory drawing from this pool."""

        async def make(task: Task) -> ExecutorSandbox:
            return await self.acquire()

        return make
