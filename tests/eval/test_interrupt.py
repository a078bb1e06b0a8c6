"""Ctrl-C stops ``traject eval`` promptly even while a sync tool blocks in ``time.sleep(10_000)``
(a real process, real SIGINTs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _start(tmp_path: Path, extra: list[str], tool: str) -> tuple[subprocess.Popen, Path]:
    marker = tmp_path / "started"
    env = dict(os.environ, BLOCKING_MARKER=str(marker), BLOCKING_TOOL=tool,
               PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests" / "tools")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "traject.cli", "eval", "--env", "blocking_tools:ENTRY",
         "--policy", "scripted:blocking_tools:block", "-n", "2", "-c", "2", "--out", str(tmp_path / "run"), *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"eval never reached the blocking tool: {proc.communicate()[0][-2000:]}")
        time.sleep(0.05)
    return proc, marker


@pytest.mark.parametrize(("flags", "tool"), [([], "sleep_forever"), (["--quiet"], "sleep_forever"),
                                             ([], "sleep_forever_isolated")])
def test_ctrl_c_stops_eval_while_a_tool_blocks(tmp_path, flags, tool):
    proc, marker = _start(tmp_path, flags, tool)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=10)  # before the fix: alive 10 minutes after two SIGINTs
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"eval still running 10 s after Ctrl-C: {proc.communicate()[0][-2000:]}")
    took = time.monotonic() - t0
    assert proc.returncode == 130, out
    assert "traject eval --out" in out and "--resume" in out
    assert "Traceback" not in out
    print(f"stopped {took:.2f} s after SIGINT")
    if tool.endswith("isolated"):  # the worker process is gone too
        pid = int(marker.read_text())
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the isolated tool's worker process outlived the eval")
