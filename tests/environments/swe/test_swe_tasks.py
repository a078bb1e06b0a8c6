"""SWE task loading, parsing and rewards on recorded trajectories (no Docker needed)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import traject
from traject.environments.swe import (SweOutcome, SweTaskData, SweTaskError, builtin_swe_tasks, load_swebench,
                                      parse_django_report, parse_report, patch_files, swe_metrics, swe_reward)
from traject.environments.swe.builtin import BUILTIN_REPOS
from traject.rewards.verifiers.unit_tests import TestStatus
from traject.types import Message, Status, Step, Task, ToolResult, Trajectory

pytestmark = pytest.mark.anyio


def record(**overrides) -> dict:
    base = {"instance_id": "octo__widget-7", "repo": "octo/widget", "base_commit": "a" * 40,
            "problem_statement": "It breaks.", "patch": "", "test_patch": "",
            "FAIL_TO_PASS": json.dumps(["tests/test_w.py::test_new[a"]), "PASS_TO_PASS": "[]",
            "environment_setup_commit": "b" * 40, "version": "1.2", "created_at": "2023-01-01"}
    return {**base, **overrides}


def make_repo(path: Path, bare: bool = False) -> Path:
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", *(["--bare"] if bare else []), str(path)], check=True)
    return path


def test_published_records_load(tmp_path):
    make_repo(tmp_path / "repos" / "octo__widget")
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text(json.dumps(record()) + "\n\n" + json.dumps(record(instance_id="octo__widget-8")) + "\n")
    tasks = load_swebench(jsonl)  # repos_dir defaults to <file's folder>/repos
    assert [t.id for t in tasks] == ["octo__widget-7", "octo__widget-8"]
    data = SweTaskData.model_validate(tasks[0].data)
    assert data.FAIL_TO_PASS == ["tests/test_w.py::test_new[a"] and data.PASS_TO_PASS == []
    assert data.repo_path == str((tmp_path / "repos" / "octo__widget").resolve())
    assert "It breaks." in tasks[0].prompt and tasks[0].metadata["version"] == "1.2"
    as_json = tmp_path / "data.json"
    as_json.write_text(json.dumps([record()]))
    assert [t.id for t in load_swebench(as_json, instance_ids=["octo__widget-7"])] == ["octo__widget-7"]


def test_specs_and_mirrors(tmp_path):
    make_repo(tmp_path / "mirrors" / "widget.git", bare=True)
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(record()) + "\n")
    specs = {"octo/widget": {"*": {"test_cmd": "pytest -rA"}, "1.2": {"install": "pip install -e .",
                                                                       "pip_packages": ["numpy"]}}}
    data = SweTaskData.model_validate(load_swebench(path, repos_dir=tmp_path / "mirrors", specs=specs)[0].data)
    assert data.repo_path.endswith("widget.git") and data.test_cmd == "pytest -rA"
    assert data.install == ["pip install -e ."] and data.pip_packages == ["numpy"]


@pytest.mark.parametrize("content, message", [
    ('{"instance_id": "x"}\n', "line 1|:1: record 'x', field 'repo'"),
    ('not json\n', ":1: not a JSON object"),
    (json.dumps(record(FAIL_TO_PASS="[oops")) + "\n", "field 'FAIL_TO_PASS'"),
    (json.dumps(record(base_commit="main")) + "\n", "not a commit hash"),
    (json.dumps(record()) + "\n", "no local copy of octo/widget"),
])
def test_bad_records_name_file_line_and_field(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(SweTaskError, match=message.split("|")[-1].replace("[", r"\[")):
        load_swebench(path, repos_dir=tmp_path)
    with pytest.raises(SweTaskError, match="does not exist"):
        load_swebench(tmp_path / "missing.jsonl")


def test_builtin_tasks_are_published_swebench_records():
    tasks = traject.load_tasks("swe")
    assert len(tasks) == len(BUILTIN_REPOS) >= 5
    again = builtin_swe_tasks()
    assert [t.data["base_commit"] for t in tasks] == [t.data["base_commit"] for t in again]  # fixed hashes
    slug = next(t for t in tasks if t.id == "traject__textkit-1")
    data = SweTaskData.model_validate(slug.data)
    # The published lists cut ids at their first space, as SWE-bench's are.
    assert data.FAIL_TO_PASS == ["tests/test_slug.py::test_slugify_lowercase[two",
                                 "tests/test_slug.py::test_slugify_lowercase[Mixed"]
    assert patch_files(data.test_patch) == ["tests/test_slug.py"] and patch_files(data.patch) == ["textkit/slug.py"]
    assert data.full_test_cmd.endswith("-p no:cacheprovider tests/test_slug.py")
    assert data.environment_setup_commit != data.base_commit
    assert [t.id for t in traject.load_tasks("swe", names=["strkit", "datekit"])] == ["traject__datekit-1",
                                                                                    "traject__strkit-1"]


def test_report_parsing():
    pytest_out = ("PASSED tests/t.py::test_a\nFAILED tests/t.py::test_b[x y] - assert 1 == 2\n"
                  "ERROR tests/t.py::test_c\n")
    statuses = parse_report(pytest_out, "pytest")
    assert statuses["tests/t.py::test_b[x y]"] is TestStatus.FAILED
    assert statuses["tests/t.py::test_b[x"] is TestStatus.FAILED  # SWE-bench's published form
    assert statuses["tests/t.py::test_a"] is TestStatus.PASSED
    django_out = ("test_ok (app.tests.T) ... ok\ntest_bad (app.tests.T)\nDocstring line ... FAIL\n"
                  "test_skip (app.tests.T) ... skipped 'no db'\ntest_err (app.tests.U) ... ERROR\n")
    d = parse_django_report(django_out)
    assert d == {"test_ok (app.tests.T)": TestStatus.PASSED, "test_skip (app.tests.T)": TestStatus.SKIPPED,
                 "test_err (app.tests.U)": TestStatus.ERROR}
    with pytest.raises(ValueError, match="unknown log parser"):
        parse_report("", "jest")


def _traj(*, submitted: bool, modified: bool, statuses: dict | None, steps: int = 3, edits: int = 1) -> Trajectory:
    out = []
    for i in range(steps):
        info = {"swe": {"edited": i < edits, "tests_run": i == 0}}
        if i == steps - 1:
            info["swe"].update(final=True, submitted=submitted, modified=modified, resolved=False)
            if statuses is not None:
                info["test_run"] = {"command": "pytest", "exit_code": 0, "statuses": statuses}
        results = [ToolResult(call_id=f"c{i}", name="bash", content="ok")]
        out.append(Step(index=i, action=Message.assistant(""), tool_results=results, info=info))
    return Trajectory(task_id="t", steps=out)


TASK = Task(id="t", data={"FAIL_TO_PASS": json.dumps(["t.py::f[a"]), "PASS_TO_PASS": json.dumps(["t.py::g"])})


async def test_outcome_levels_and_gated_rewards():
    passing = {"t.py::f[a b]": "PASSED", "t.py::f[a": "PASSED", "t.py::g": "PASSED"}
    failing = {"t.py::f[a b]": "FAILED", "t.py::f[a": "FAILED", "t.py::g": "PASSED"}
    cases = {
        "no_submit": _traj(submitted=False, modified=True, statuses=None),
        "empty_patch": _traj(submitted=True, modified=False, statuses=failing, edits=0),
        "patch_fails": _traj(submitted=True, modified=True, statuses=failing),
        "resolved": _traj(submitted=True, modified=True, statuses=passing),
    }
    outcome = SweOutcome()
    values = [(await outcome.score(t, TASK)) for t in cases.values()]
    assert [v.info["level"] for v in values] == list(cases)
    assert [v.total for v in values] == sorted(v.total for v in values)  # ordered
    assert [v.success for v in values] == [False, False, False, True]

    gra = swe_reward(gate="patch_fails")
    no_submit = await gra.score(cases["no_submit"], TASK)
    # The step rewards (3 valid calls, an edit, a test run) do not pay for an episode without a submit.
    assert no_submit.total == outcome.values["no_submit"]
    assert no_submit.components["ungated_total"] > no_submit.total
    resolved = await gra.score(cases["resolved"], TASK)
    assert resolved.total == pytest.approx(1.0 + 3 * 0.02 + 0.1 + 0.1)
    assert resolved.components["gated_total"] == resolved.components["ungated_total"] == resolved.total
    # Gate at "resolved": a failing patch earns its outcome only.
    strict = await swe_reward(gate="resolved").score(cases["patch_fails"], TASK)
    assert strict.total == outcome.values["patch_fails"]
    with pytest.raises(ValueError, match="must not decrease"):
        SweOutcome({"resolved": -5.0})


def test_metrics():
    trajs = [_traj(submitted=True, modified=True, statuses=None), _traj(submitted=True, modified=False, statuses=None),
             _traj(submitted=False, modified=True, statuses=None), Trajectory(task_id="t", status=Status.INFRA_ERROR)]
    trajs[0].steps[-1].info["swe"]["resolved"] = True
    m = swe_metrics(trajs)
    assert (m.episodes, m.infra_errors) == (3, 1)
    assert (m.completion_rate, m.modification_rate, m.resolve_rate) == pytest.approx((2 / 3, 2 / 3, 1 / 3))


@pytest.mark.parametrize("values", [None, {"patch_fails": 0.2, "resolved": 0.5}])
async def test_step_rewards_never_lift_a_failed_patch_to_a_resolved_score(values):
    from traject.environments.swe.reward import StepRewardConfig

    failing = {"t.py::f[a b]": "FAILED", "t.py::f[a": "FAILED", "t.py::g": "PASSED"}
    passing = {"t.py::f[a b]": "PASSED", "t.py::f[a": "PASSED", "t.py::g": "PASSED"}
    # An episode that piles up step rewards: 40 valid calls, 40 edits, 40 test runs.
    busy = _traj(submitted=True, modified=True, statuses=failing, steps=40, edits=40)
    for s in busy.steps:
        s.info["swe"]["tests_run"] = True
    lazy_win = _traj(submitted=True, modified=True, statuses=passing, steps=1, edits=0)
    lazy_win.steps[0].tool_results = []
    lazy_win.steps[0].info["swe"]["tests_run"] = False
    # Even a config that asks for uncapped step rewards is capped below the margin.
    for steps in (None, StepRewardConfig(max_total=None), StepRewardConfig(max_total=5.0)):
        gra = swe_reward(gate="patch_fails", values=values, steps=steps)
        failed = await gra.score(busy, TASK)
        resolved = await gra.score(lazy_win, TASK)
        assert failed.total > SweOutcome(values).values["patch_fails"]  # the steps are paid...
        assert failed.total < resolved.total  # ...but never up to a resolved patch
        assert resolved.success and not failed.success
