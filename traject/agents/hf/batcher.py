"""MicroBatcher: gather concurrent requests for a moment, run them as one batch in a thread.

The agent loop runs G episodes of a group at once; each calls ``policy.act`` on its own. A
local model serves them far faster as one padded batch than one at a time, so the first caller
becomes the leader: it waits ``wait_s`` (or until ``max_batch_size`` requests are pending),
takes the pending requests, and runs the synchronous batch function in a worker thread, so the
event loop keeps serving env steps. Requests that arrive meanwhile form the next batch. Only
one batch runs at a time, which also keeps concurrent episodes off the model's state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import anyio

Req = TypeVar("Req")
Res = TypeVar("Res")


@dataclass
class _Slot(Generic[Req, Res]):
    request: Req
    result: Res | None = None
    error: BaseException | None = None
    done: bool = False


@dataclass
class BatchStats:
    batches: int = 0
    requests: int = 0
    sizes: list[int] = field(default_factory=list)

    @property
    def mean_batch_size(self) -> float:
        return self.requests / self.batches if self.batches else 0.0


class MicroBatcher(Generic[Req, Res]):
    def __init__(self, run_batch: Callable[[list[Req]], list[Res]], *, max_batch_size: int = 16,
                 wait_s: float = 0.01) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.wait_s = wait_s
        self.stats = BatchStats()
        self._pending: list[_Slot[Req, Res]] = []
        self._busy = False
        self._idle = anyio.Event()

    async def submit(self, request: Req) -> Res:
        slot: _Slot[Req, Res] = _Slot(request)
        self._pending.append(slot)
        try:
            while not slot.done:
                if self._busy:
                    await self._idle.wait()
                    continue
                await self._lead()
        finally:
            if not slot.done and slot in self._pending:
                self._pending.remove(slot)  # cancelled before its batch ran
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]

    async def _lead(self) -> None:
        self._busy = True
        self._idle = anyio.Event()
        try:
            if self.wait_s > 0 and len(self._pending) < self.max_batch_size:
                with anyio.move_on_after(self.wait_s):
                    while len(self._pending) < self.max_batch_size:
                        await anyio.sleep(min(0.001, self.wait_s))
            batch = self._pending[: self.max_batch_size]
            del self._pending[: len(batch)]
            if not batch:
                return
            # Once taken, a batch runs to the end and hands out every result, even if the
            # leader's own episode is cancelled meanwhile: the others are waiting on it.
            with anyio.CancelScope(shield=True):
                try:
                    results = await anyio.to_thread.run_sync(self.run_batch, [s.request for s in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(f"batch function returned {len(results)} results for {len(batch)} requests")
                except Exception as exc:  # noqa: BLE001 - every request of the batch gets the error
                    for s in batch:
                        s.error, s.done = exc, True
                else:
                    for s, r in zip(batch, results, strict=True):
                        s.result, s.done = r, True
                self.stats.batches += 1
                self.stats.requests += len(batch)
                self.stats.sizes.append(len(batch))
        finally:
            self._busy = False
            self._idle.set()
