"""The real ``traject eval`` CLI, as a subprocess, against a real HTTP chat server: interrupted
with SIGINT, killed with SIGKILL, resumed, and every (task, sample) found exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from traject.environments.builtin.lookup import chat_responder as responder

ROOT = Path(__file__).resolve().parents[2]
N_TASKS, SAMPLES = 24, 2


def _cli(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"}
    return subprocess.Popen([sys.executable, "-m", "traject", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_bytes().splitlines(keepends=True) if line.endswith(b"\n")]


def _wait_for(path: Path, at_least: int, proc: subprocess.Popen[str], timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = len(_lines(path))
        if n >= at_least:
            return n
        if proc.poll() is not None:
            pytest.fail(f"the CLI exited early ({proc.returncode}):\n{proc.stdout.read()}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"{path} never reached {at_least} records")


def test_eval_survives_sigint_and_sigkill_and_resumes_without_duplicates(chat_server, tmp_path):
    server = chat_server(responder(wrong_every=4, delay_s=0.03))
    run = tmp_path / "run"
    store = run / "trajectories.jsonl"
    first = ["eval", "--env", "lookup", "--base-url", server.url, "--model", "scripted",
             "-n", str(N_TASKS), "-k", str(SAMPLES), "-c", "4", "--seed", "3", "-o", str(run), "-q"]

    # 1. Ctrl-C mid-run: exit 130, what had finished is still there, and the run says how to resume.
    proc = _cli(*first)
    seen = _wait_for(store, 6, proc)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, out
    assert "--resume" in out
    after_int = len(_lines(store))
    assert seen <= after_int < N_TASKS * SAMPLES
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["invocations"][-1]["outcome"] == "interrupted"

    # 2. Resume, then SIGKILL: no clean-up runs at all.
    proc = _cli("eval", "-o", str(run), "--resume", "-q")
    _wait_for(store, after_int + 6, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    after_kill = len(_lines(store))
    assert after_kill < N_TASKS * SAMPLES, "the run finished before it could be killed"

    # A resume that changes what the run measures is refused, naming the field.
    proc = _cli("eval", "-o", str(run), "--resume", "-k", "3", "-q")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "samples: recorded 2, given 3" in out

    # 3. Resume to the end.
    requests_before = len(server.requests)
    proc = _cli("eval", "-o", str(run), "--resume", "-c", "8")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out

    records = _lines(store)
    keys = Counter((r["task_id"], r["sample_index"]) for r in records)
    tasks = [json.loads(line)["id"] for line in (run / "tasks.jsonl").read_text().splitlines()]
    assert len(tasks) == N_TASKS
    assert set(keys) == {(t, i) for t in tasks for i in range(SAMPLES)}
    assert max(keys.values()) == 1, [k for k, v in keys.items() if v > 1]
    # The last invocation ran exactly the missing episodes: 3 model calls each (2 lookups, submit).
    assert len(server.requests) - requests_before == 3 * (N_TASKS * SAMPLES - after_kill)

    results = json.loads((run / "results.json").read_text())
    summary = results["summary"]
    assert results["complete"] and summary["counts"]["present"] == N_TASKS * SAMPLES
    successes = sum(1 for r in records if r["reward"]["success"])
    assert summary["success"]["mean"] == pytest.approx(successes / len(records))
    assert 0 < successes < len(records)  # the responder fails some tasks on purpose
    assert "pass@k" in out and "success" in out
    manifest = json.loads((run / "manifest.json").read_text())
    assert [i["outcome"] for i in manifest["invocations"]] == ["interrupted", "running", "completed"]
    assert all(r["seed"] is not None for r in records)
