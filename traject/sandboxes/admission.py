"""Admission control per Docker host, shared by every process on this machine.

A host has ``cap`` *run slots* and ``create_cap`` *create slots*: files under one directory
per host (``TRAJECT_ADMISSION_DIR``, default ``$TMPDIR/traject-admission``). A slot is taken
by an exclusive ``flock`` on its file and held as long as the file stays open: a sandbox holds
a run slot for the life of its container and a create slot while the container is being
created and started. Every process that opens sandboxes on this machine (``traject eval``,
veRL's agent workers, a local trainer) takes slots from the same files, so the caps hold
across processes; the kernel drops the locks of a process that dies, so a crash never leaks
capacity. Processes that name different caps for one host share the same files: the biggest
cap named is what can be reached.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import random
import tempfile

import anyio
import anyio.lowlevel

DEFAULT_HOST_CAP = int(os.environ.get("TRAJECT_SANDBOX_HOST_CAP", "64"))
DEFAULT_CREATE_CAP = int(os.environ.get("TRAJECT_SANDBOX_CREATE_CAP", "8"))
POLL_S = 0.01
MAX_POLL_S = 0.1


def admission_root() -> str:
    return os.environ.get("TRAJECT_ADMISSION_DIR") or os.path.join(tempfile.gettempdir(), "traject-admission")


def host_dir(host: str) -> str:
    """One directory per Docker host URL (shared by all users: sticky and world-writable)."""
    root = admission_root()
    path = os.path.join(root, hashlib.sha1(host.encode()).hexdigest()[:16])
    for directory in (root, path):
        if not os.path.isdir(directory):
            os.makedirs(directory, exist_ok=True)
            try:
                os.chmod(directory, 0o1777)
            except PermissionError:
                pass
    return path


class Slot:
    """A held slot; ``release()`` (idempotent) gives it back."""

    __slots__ = ("fd", "path")

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path

    @property
    def held(self) -> bool:
        return self.fd >= 0

    def release(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)  # closing the last descriptor drops the flock


def _open(path: str) -> int:
    # read-only is enough for flock, and works for another user's slot file
    return os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)


def _try_lock(path: str) -> Slot | None:
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    return Slot(fd, path)


def try_take(host: str, kind: str, cap: int) -> Slot | None:
    """A free ``kind`` slot (``run`` or ``create``) of ``host`` under ``cap``, or None."""
    directory = host_dir(host)
    start = random.randrange(cap) if cap > 0 else 0
    for i in range(cap):
        slot = _try_lock(os.path.join(directory, f"{kind}.{(start + i) % cap}"))
        if slot is not None:
            return slot
    return None


def held(host: str, kind: str, cap: int) -> int:
    """How many of the first ``cap`` ``kind`` slots of ``host`` some process holds now."""
    directory = host_dir(host)
    count = 0
    for i in range(cap):
        path = os.path.join(directory, f"{kind}.{i}")
        if not os.path.exists(path):
            continue
        probe = _try_lock(path)
        if probe is None:
            count += 1
        else:
            probe.release()
    return count


_pollers: dict[tuple[str, str, object], anyio.Lock] = {}


async def take(host: str, kind: str, cap: int, *, timeout: float | None = None) -> Slot:
    """Wait for a ``kind`` slot of ``host``. The holders may be other processes, so a free slot
    is found by polling; in each process (event loop) one waiter polls, the others queue
    behind it in order, and the poll backs off to ``MAX_POLL_S``."""
    slot = try_take(host, kind, cap)
    if slot is not None:
        return slot
    key = (host, kind, anyio.lowlevel.current_token())
    lock = _pollers.setdefault(key, anyio.Lock())
    with anyio.fail_after(timeout):
        async with lock:
            delay = POLL_S
            while True:
                slot = try_take(host, kind, cap)
                if slot is not None:
                    return slot
                await anyio.sleep(delay * (0.5 + random.random()))
                delay = min(MAX_POLL_S, delay * 1.5)
