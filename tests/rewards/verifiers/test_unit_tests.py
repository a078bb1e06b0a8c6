"""Unit-test verifier: a real pytest run in a real subprocess sandbox.

The sandbox branch's LocalSandbox is not on main yet, so this file carries a minimal
subprocess implementation of the Sandbox protocol (real processes, a real directory)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from traject.rewards.verifiers import TestStatus, UnitTestConfig, UnitTestReward, parse_pytest_report, run_tests
from traject.sandboxes import ExecResult, Sandbox
from traject.types import Message, Step, Task, Trajectory


class SubprocessSandbox:
    """Runs commands with /bin/sh in ``root``; paths are relative to it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def exec(self, cmd, *, timeout, stdin=None, workdir=None, env=None) -> ExecResult:
        cwd = self.root / workdir if workdir else self.root
        full_env = {**os.environ, **(env or {})}
        t0 = time.perf_counter()

        def run() -> ExecResult:
            proc = subprocess.Popen(cmd, shell=isinstance(cmd, str), cwd=cwd, env=full_env, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
            try:
                out, err = proc.communicate(stdin, timeout=timeout)
                timed_out = False
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
                timed_out = True
            return ExecResult(exit_code=proc.returncode, stdout=out.decode(errors="replace"),
                              stderr=err.decode(errors="replace"), timed_out=timed_out,
                              duration_s=time.perf_counter() - t0)

        return await anyio.to_thread.run_sync(run)

    async def write_file(self, path: str, data: bytes) -> None:
        p = self.root / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)

    async def read_file(self, path: str) -> bytes:
        return (self.root / path).read_bytes()

    async def aclose(self) -> None:
        return None


BUGGY = "def add(a, b):\n    return a - b\n\ndef mul(a, b):\n    return a * b\n"
FIXED = "def add(a, b):\n    return a + b\n\ndef mul(a, b):\n    return a * b\n"
TESTS = '''
import pytest
from calc import add, mul

def test_add():
    assert add(2, 3) == 5

@pytest.mark.parametrize("a,b,c", [(2, 3, 6), (0, 9, 0)])
def test_mul(a, b, c):
    assert mul(a, b) == c

def test_skipped():
    pytest.skip("not today")
'''
COMMAND = f"PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 {sys.executable} -m pytest -rA -q -p no:cacheprovider tests"
F2P = ["tests/test_calc.py::test_add"]
P2P = ["tests/test_calc.py::test_mul[2-3-6]", "tests/test_calc.py::test_mul[0-9-0]"]


def traj_with(run) -> Trajectory:
    return Trajectory(task_id="swe", steps=[Step(index=0, action=Message.assistant("done"),
                                                 info={"test_run": run.model_dump(mode="json")})])


@pytest.mark.anyio
async def test_fail_to_pass_and_pass_to_pass_with_a_real_pytest_run(tmp_path):
    sandbox: Sandbox = SubprocessSandbox(tmp_path)
    assert isinstance(sandbox, Sandbox)
    await sandbox.write_file("calc.py", BUGGY.encode())
    await sandbox.write_file("tests/test_calc.py", TESTS.encode())
    task = Task(id="swe", data={"FAIL_TO_PASS": F2P, "PASS_TO_PASS": str(P2P).replace("'", '"'),
                                "test_command": COMMAND})
    reward = UnitTestReward()

    before = await reward.measure(sandbox, task)
    assert before.statuses["tests/test_calc.py::test_add"] is TestStatus.FAILED
    assert before.statuses["tests/test_calc.py::test_mul[0-9-0]"] is TestStatus.PASSED
    r = await reward.score(traj_with(before), task)
    assert r.total == 0.0 and not r.success
    assert r.components["fail_to_pass"] == 0.0 and r.components["pass_to_pass"] == 1.0
    assert r.info["FAIL_TO_PASS"]["failure"] == F2P

    await sandbox.write_file("calc.py", FIXED.encode())   # the agent's fix
    after = await run_tests(sandbox, COMMAND, timeout=120)
    r = await reward.score(traj_with(after), task)
    assert r.total == 1.0 and r.success and r.components["resolved"] == 1.0

    await sandbox.write_file("calc.py", FIXED.replace("a * b", "a * b + 1").encode())  # breaks mul
    broken = await run_tests(sandbox, COMMAND, timeout=120)
    r = await reward.score(traj_with(broken), task)
    assert r.total == 0.0 and r.info["PASS_TO_PASS"]["failure"] == P2P
    partial = await UnitTestReward(UnitTestConfig(partial=True)).score(traj_with(broken), task)
    assert partial.total == pytest.approx(1 / 3)


@pytest.mark.anyio
async def test_timeout_is_not_resolved(tmp_path):
    sandbox = SubprocessSandbox(tmp_path)
    run = await run_tests(sandbox, "echo 'PASSED tests/t.py::test_a'; sleep 5", timeout=0.5)
    assert run.timed_out
    r = await UnitTestReward().score(traj_with(run), Task(id="t", data={"FAIL_TO_PASS": ["tests/t.py::test_a"]}))
    assert r.total == 0.0


def test_parser_reads_both_report_styles():
    text = """
tests/a.py::test_one PASSED                                   [ 33%]
tests/a.py::test_two FAILED                                   [ 66%]
tests/a.py::test_p[x y] PASSED                                [100%]
=========================== short test summary info ============================
PASSED tests/b.py::TestK::test_three
FAILED tests/b.py::test_four - AssertionError: assert 1 == 2
ERROR tests/a.py::test_one - RuntimeError: teardown
XFAIL tests/b.py::test_five - known bug
SKIPPED [1] tests/b.py:10: not today
"""
    got = parse_pytest_report(text)
    assert got == {
        "tests/a.py::test_one": TestStatus.ERROR,          # the worse of PASSED and a teardown ERROR
        "tests/a.py::test_two": TestStatus.FAILED,
        "tests/a.py::test_p[x y]": TestStatus.PASSED,
        "tests/b.py::TestK::test_three": TestStatus.PASSED,
        "tests/b.py::test_four": TestStatus.FAILED,
        "tests/b.py::test_five": TestStatus.XFAIL,
    }


@pytest.mark.anyio
async def test_missing_record_fails_the_reward():
    r = await UnitTestReward().score(Trajectory(task_id="t"), Task(id="t", data={"FAIL_TO_PASS": ["x::y"]}))
    assert r.failed and "no test run recorded" in r.error
