"""Test servers started as child processes: their output goes to a log file, and start-up waits
until they answer or names why not (the log's tail)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def start_logged(argv: Sequence[str], log_path: Path) -> subprocess.Popen[bytes]:
    """``argv`` in a session of its own (so its process group can be killed), stdout and
    stderr appended to ``log_path``."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def wait_until_up(proc: subprocess.Popen[bytes], answers: Callable[[], bool], *, what: str, log_path: Path,
                  timeout: float, on_failure: Callable[[], None], interval: float = 0.2) -> None:
    """Poll ``answers`` until it is true; if ``proc`` exits or ``timeout`` passes first, call
    ``on_failure`` (stop what was started) and raise with the log's tail."""
    deadline = time.monotonic() + timeout
    while not answers():
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log_path.read_text(errors="replace")[-2000:]
            on_failure()
            raise RuntimeError(f"{what} did not come up: {tail}")
        time.sleep(interval)
