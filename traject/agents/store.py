"""TrajectoryStore: trajectories as JSON lines, appended and fsynced.

A run killed mid-write leaves at most one torn last line; opening the store again cuts it off,
so the file is always a sequence of whole records and a resumed run appends cleanly.

Appends are group-committed: whoever holds the write lock writes every line queued so far
with one ``write`` and one ``fsync`` in a worker thread, and every append returns only once
its own line is on disk. Under many concurrent episodes this makes one fsync serve many
trajectories instead of queueing one fsync per trajectory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import anyio
from pydantic import ValidationError

from traject.types import Status, Trajectory

Key = tuple[str, int]


class StoreError(ValueError):
    pass


class TrajectoryStore:
    def __init__(self, path: str | Path, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._repair()
        self._lock = anyio.Lock()
        self._fh = open(self.path, "ab")  # noqa: SIM115 - held for the store's life
        self._pending: list[bytes] = []
        self._queued = 0    # lines ever queued
        self._durable = 0   # lines known to be on disk
        self.flushes = 0

    def _repair(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb+") as fh:
            data = fh.read()
            if data and not data.endswith(b"\n"):
                cut = data.rfind(b"\n") + 1
                fh.truncate(cut)

    def _write(self, data: bytes) -> None:
        self._fh.write(data)
        self._fh.flush()
        if self.fsync:
            os.fsync(self._fh.fileno())

    async def append(self, traj: Trajectory) -> None:
        """Append one trajectory; returns once it is on disk."""
        self._pending.append(traj.model_dump_json().encode() + b"\n")
        self._queued += 1
        mine = self._queued
        async with self._lock:
            if self._durable >= mine:
                return  # an earlier holder of the lock wrote our line with its batch
            batch, self._pending = self._pending, []
            upto = self._queued
            # Not cancellable on purpose: a line is written whole or not at all.
            await anyio.to_thread.run_sync(self._write, b"".join(batch))
            self._durable = upto
            self.flushes += 1

    def append_sync(self, traj: Trajectory) -> None:
        self._pending.append(traj.model_dump_json().encode() + b"\n")
        self._queued += 1
        self.flush_sync()

    def flush_sync(self) -> None:
        """Write whatever is queued, now (from synchronous code, e.g. on shutdown)."""
        if self._pending and not self._fh.closed:
            batch, self._pending = self._pending, []
            self._write(b"".join(batch))
            self._durable = self._queued

    def __iter__(self) -> Iterator[Trajectory]:
        return iter_trajectories(self.path)

    @staticmethod
    def read(path: str | Path) -> Iterator[Trajectory]:
        """The records of a store file, without opening it for writing."""
        return iter_trajectories(path)

    def load(self) -> list[Trajectory]:
        """Every stored trajectory, the latest record winning where a key was re-run."""
        latest: dict[Key, Trajectory] = {}
        for traj in self:
            latest[(traj.task_id, traj.sample_index)] = traj
        return list(latest.values())

    def completed_keys(self, *, retry_infra: bool = False) -> set[Key]:
        """Keys a resumed run should skip: all stored ones, or with ``retry_infra`` all but
        those whose latest record is an infra error."""
        return {(t.task_id, t.sample_index) for t in self.load()
                if not (retry_infra and t.status is Status.INFRA_ERROR)}

    def close(self) -> None:
        """Flush what is queued and close. Safe to call twice."""
        if self._fh.closed:
            return
        self.flush_sync()
        self._fh.close()

    def __enter__(self) -> TrajectoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_trajectories(path: str | Path) -> Iterator[Trajectory]:
    path = Path(path)
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            if not line.endswith(b"\n"):
                return  # a torn last record: it was never finished
            try:
                yield Trajectory.model_validate_json(line)
            except ValidationError as exc:
                raise StoreError(f"{path}:{lineno}: not a trajectory record: {exc.errors()[0]['msg']} "
                                 f"at {'.'.join(map(str, exc.errors()[0]['loc']))}") from None
