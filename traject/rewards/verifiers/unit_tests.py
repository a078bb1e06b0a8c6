"""Unit tests as a verifier, SWE-bench style: FAIL_TO_PASS and PASS_TO_PASS.

Two halves, because rewards are pure functions of the trajectory:

* :func:`run_tests` runs a test command in a :class:`~traject.sandboxes.Sandbox` (the env calls
  it at the end of the episode, while its sandbox is open) and parses pytest's report per test
  id into a :class:`TestRun`. The env records ``test_run.model_dump()`` in the last step's
  ``info["test_run"]`` (or ``Trajectory.info["test_run"]``).
* :class:`UnitTestReward` reads that record: the task is resolved when every FAIL_TO_PASS test
  and every PASS_TO_PASS test passes (``task.data["FAIL_TO_PASS"]``, ``["PASS_TO_PASS"]``: lists
  of pytest node ids, or JSON strings of them, as SWE-bench ships them). ``partial=True``
  gives the fraction of those tests that pass instead.

The parser reads both pytest report styles: the ``-rA`` short summary (``PASSED tests/x.py::t``,
``FAILED tests/x.py::t - AssertionError``), as the SWE-bench harness runs it, and ``-v`` lines
(``tests/x.py::t PASSED [ 50%]``). Run pytest with one of those flags. A test reported twice
(a pass, then an error in teardown) keeps the worse status. PASSED and XFAIL count as passing,
as in SWE-bench; a test missing from the report counts as failing.
"""

from __future__ import annotations

import json
import re
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from traject.rewards.base import Reward
from traject.sandboxes.base import Sandbox
from traject.types import RewardResult, Task, Trajectory

TEST_RUN_KEY = "test_run"


class TestStatus(str, Enum):
    __test__ = False  # not a pytest test class

    PASSED = "PASSED"
    FAILED = "FAILED"
    ERROR = "ERROR"
    SKIPPED = "SKIPPED"
    XFAIL = "XFAIL"
    XPASS = "XPASS"

    @property
    def ok(self) -> bool:
        return self in (TestStatus.PASSED, TestStatus.XFAIL)


_SEVERITY = {TestStatus.PASSED: 0, TestStatus.XFAIL: 0, TestStatus.SKIPPED: 1, TestStatus.XPASS: 2,
             TestStatus.FAILED: 3, TestStatus.ERROR: 4}
_STATUS = "|".join(s.value for s in TestStatus)
_SUMMARY = re.compile(rf"^(?:\[gw\d+\]\s+(?:\[\s*\d+%\]\s+)?)?({_STATUS})\s+(\S[^\n]*?::[^\n]*?)(?:\s+-\s+.*)?\s*$")
_VERBOSE = re.compile(rf"^(\S[^\n]*?::[^\n]*?)\s+({_STATUS})(?:\s+\[\s*\d+%\])?\s*$")


class TestRun(BaseModel):
    """A parsed test run. ``statuses`` maps pytest node ids to what happened to them."""

    __test__ = False  # not a pytest test class
    model_config = ConfigDict(extra="forbid")

    command: str
    exit_code: int
    timed_out: bool = False
    duration_s: float = 0.0
    statuses: dict[str, TestStatus] = Field(default_factory=dict)
    output_tail: str = ""


def parse_pytest_report(text: str) -> dict[str, TestStatus]:
    out: dict[str, TestStatus] = {}
    for raw in text.splitlines():
        line = raw.strip()
        m = _SUMMARY.match(line)
        if m:
            status, test = TestStatus(m.group(1)), m.group(2).strip()
        else:
            m = _VERBOSE.match(line)
            if not m:
                continue
            test, status = m.group(1).strip(), TestStatus(m.group(2))
        prev = out.get(test)
        if prev is None or _SEVERITY[status] > _SEVERITY[prev]:
            out[test] = status
    return out


async def run_tests(sandbox: Sandbox, command: str, *, timeout: float = 600.0, workdir: str | None = None,
                    env: dict[str, str] | None = None, tail_chars: int = 4000) -> TestRun:
    """Run ``command`` (a pytest invocation with ``-rA`` or ``-v``) and parse its report."""
    res = await sandbox.exec(command, timeout=timeout, workdir=workdir, env=env)
    text = res.stdout + "\n" + res.stderr
    return TestRun(command=command, exit_code=res.exit_code, timed_out=res.timed_out, duration_s=res.duration_s,
                   statuses=parse_pytest_report(text), output_tail=text[-tail_chars:])


class UnitTestConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "unit_tests"
    run_key: str = TEST_RUN_KEY
    fail_to_pass_key: str = "FAIL_TO_PASS"
    pass_to_pass_key: str = "PASS_TO_PASS"
    command_key: str = "test_command"
    partial: bool = False
    timeout_s: float = 600.0


def _test_ids(task: Task, key: str) -> list[str]:
    raw = task.data.get(key, [])
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"task {task.id!r}: task.data[{key!r}] is a string but not a JSON list of "
                             f"test ids: {exc}") from exc
    if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
        raise ValueError(f"task {task.id!r}: task.data[{key!r}] must be a list of pytest node ids")
    return list(raw)


def recorded_run(traj: Trajectory, key: str = TEST_RUN_KEY) -> TestRun | None:
    for step in reversed(traj.steps):
        if step.info.get(key) is not None:
            return TestRun.model_validate(step.info[key])
    if traj.info.get(key) is not None:
        return TestRun.model_validate(traj.info[key])
    return None


class UnitTestReward(Reward):
    def __init__(self, config: UnitTestConfig | None = None) -> None:
        self.config = config or UnitTestConfig()
        self.name = self.config.name

    async def measure(self, sandbox: Sandbox, task: Task, *, workdir: str | None = None) -> TestRun:
        """For the env: run the task's ``test_command`` in its sandbox (record the result in
        the last step's ``info[run_key]``)."""
        cmd = task.data.get(self.config.command_key)
        if not isinstance(cmd, str):
            raise ValueError(f"task {task.id!r} has no test command in task.data[{self.config.command_key!r}]")
        return await run_tests(sandbox, cmd, timeout=self.config.timeout_s, workdir=workdir)

    async def score(self, traj: Trajectory, task: Task) -> RewardResult:
        c = self.config
        run = recorded_run(traj, c.run_key)
        if run is None:
            return RewardResult(failed=True, error=f"no test run recorded (Step.info[{c.run_key!r}] or "
                                f"Trajectory.info[{c.run_key!r}]): the env must run the tests before closing its sandbox")
        f2p = _test_ids(task, c.fail_to_pass_key)
        p2p = _test_ids(task, c.pass_to_pass_key)
        if not f2p and not p2p:
            return RewardResult(failed=True, error=f"task {task.id!r} names no tests ({c.fail_to_pass_key}, "
                                f"{c.pass_to_pass_key})")

        def passing(ids: list[str]) -> list[str]:
            return [t for t in ids if (s := run.statuses.get(t)) is not None and s.ok]

        f2p_ok, p2p_ok = passing(f2p), passing(p2p)
        resolved = len(f2p_ok) == len(f2p) and len(p2p_ok) == len(p2p) and not run.timed_out
        if c.partial:
            total = (len(f2p_ok) + len(p2p_ok)) / (len(f2p) + len(p2p))
        else:
            total = 1.0 if resolved else 0.0
        info: dict[str, Any] = {
            "FAIL_TO_PASS": {"success": f2p_ok, "failure": [t for t in f2p if t not in f2p_ok]},
            "PASS_TO_PASS": {"success": p2p_ok, "failure": [t for t in p2p if t not in p2p_ok]},
            "timed_out": run.timed_out, "exit_code": run.exit_code,
        }
        return RewardResult(
            total=total,
            components={self.name: total, "fail_to_pass": len(f2p_ok) / len(f2p) if f2p else 1.0,
                        "pass_to_pass": len(p2p_ok) / len(p2p) if p2p else 1.0, "resolved": float(resolved)},
            success=resolved,
            info=info,
        )
