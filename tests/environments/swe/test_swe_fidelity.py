"""SWE-bench's own package (swebench 5.x) where it knows a repository, per-instance Python,
steps named by their spec entry, and the official image names."""

from __future__ import annotations

import json
import os

import pytest

from traject.agents.loop import AgentLoop
from traject.agents.scripted import ScriptedPolicy
from traject.environments.swe import SweEnv, SweTaskData, builtin_swe_tasks, ensure_env_image, load_swebench
from traject.environments.swe.images import env_spec, official_image
from traject.environments.swe.parsing import parse_report, report_parser
from traject.rewards.verifiers.unit_tests import TestStatus
from traject.sandboxes.images import ImageBuildError
from traject.types import Message, Status, Task, ToolCall

swebench = pytest.importorskip("swebench", reason="the interop extra (swebench) is not installed")

# Runner output in each repository's own format.
DJANGO_LOG = """\
test_aware_datetime (utils_tests.test_timesince.TimesinceTests) ... ok
test_leap_year (utils_tests.test_timesince.TimesinceTests) ... FAIL
test_naive (utils_tests.test_timesince.TimesinceTests) ... ERROR
test_skip (utils_tests.test_timesince.TimesinceTests) ... skipped 'no tz'
"""
SYMPY_LOG = """\
============================= test process starts ==============================
sympy/core/tests/test_basic.py[3]
test_structure ok
test_equality F
test_matches_basic E
"""
PYTEST_LOG = """\
PASSED tests/test_a.py::test_one
FAILED tests/test_a.py::test_two[a b] - AssertionError: no
"""


def test_swebench_parsers_read_the_repos_they_know_and_traject_falls_back():
    assert report_parser("auto", "django/django") == "swebench:parse_log_django"
    got = parse_report(DJANGO_LOG, "auto", repo="django/django")
    assert got == {"test_aware_datetime (utils_tests.test_timesince.TimesinceTests)": TestStatus.PASSED,
                   "test_leap_year (utils_tests.test_timesince.TimesinceTests)": TestStatus.FAILED,
                   "test_naive (utils_tests.test_timesince.TimesinceTests)": TestStatus.ERROR,
                   "test_skip (utils_tests.test_timesince.TimesinceTests)": TestStatus.SKIPPED}
    # sympy's own runner prints "test_x ok": SWE-bench's parser reads it, traject's pytest one cannot
    assert parse_report(SYMPY_LOG, "auto", repo="sympy/sympy") == {
        "test_structure": TestStatus.PASSED, "test_equality": TestStatus.FAILED,
        "test_matches_basic": TestStatus.ERROR}
    assert parse_report(SYMPY_LOG, "pytest", repo="sympy/sympy") == {}
    # a record's own parser name, as SWE-bench 5.x datasets carry it
    assert report_parser("parse_log_pytest_v2", "someone/else") == "swebench:parse_log_pytest_v2"
    # a repository SWE-bench does not know: traject's parser, ids also cut at the first space
    assert report_parser("auto", "someone/else") == "pytest"
    fallback = parse_report(PYTEST_LOG, "auto", repo="someone/else")
    assert fallback["tests/test_a.py::test_one"] is TestStatus.PASSED
    assert fallback["tests/test_a.py::test_two[a"] is TestStatus.FAILED
    with pytest.raises(ValueError, match="unknown log parser 'parse_log_nothing'"):
        report_parser("parse_log_nothing", None)


def test_official_image_layer_makes_a_traject_sandbox_image():
    from traject.environments.swe.images import official_layer
    from traject.sandboxes.images import SEED_DIR

    layer = official_layer()
    assert layer.seeds_workspace and not layer.network and layer.repo is None
    assert layer.env["PATH"].startswith("/opt/miniconda3/envs/testbed/bin:")
    assert layer.run_names == ("sandbox user and workspace", "copy of /testbed",
                               "re-pointing editable installs at the workspace", "chown of the seed")
    assert f"cp -a /testbed {SEED_DIR}/repo" in layer.run[1]
    assert "s#/testbed#/workspace/repo#g" in layer.run[2]


def test_official_image_names():
    assert official_image("django__django-11099") == "swebench/sweb.eval.x86_64.django_1776_django-11099:latest"
    assert official_image("astropy__astropy-12907", namespace="mirror.local", tag="v2", arch="arm64") == \
        "mirror.local/sweb.eval.arm64.astropy_1776_astropy-12907:v2"


EVAL_SCRIPT = """#!/bin/bash
set -uxo pipefail
cd /testbed
git checkout {base} tests/test_seq.py
git apply -v - <<'EOF_114329324912'
(the test patch)
EOF_114329324912
: '>>>>> Start Test Output'
python3 -m pytest -rA tests/test_seq.py
: '>>>>> End Test Output'
git checkout {base} tests/test_seq.py
"""


def test_a_swebench_5_record_and_specs_in_swebenchs_vocabulary(tmp_path):
    [task] = builtin_swe_tasks(names=["strkit"])
    record = {k: v for k, v in task.data.items()
              if k not in ("log_parser", "test_cmd", "test_files", "python", "pre_install", "install")}
    record["eval_script"] = EVAL_SCRIPT.format(base=record["base_commit"])
    record["log_parser"] = "parse_log_pytest_v2"
    record["image"] = official_image(record["instance_id"])
    path = tmp_path / "swebench5.jsonl"
    path.write_text(json.dumps(record) + "\n")
    specs = {record["repo"]: {record["version"]: {"python": "3.13", "pre_install": ["true"],
                                                  "install": ["python3 -c 'import seq'"]}}}
    [loaded] = load_swebench(path, specs=specs)
    data = SweTaskData.model_validate(loaded.data)
    assert data.full_test_cmd == "python3 -m pytest -rA tests/test_seq.py"  # from the eval script
    assert data.log_parser == "swebench:parse_log_pytest_v2" and data.python == "3.13"
    spec = env_spec(data)
    assert spec.run_names[1:3] == ("pre_install: true", "install: python3 -c 'import seq'")




def call(name: str, **arguments) -> Message:
    return Message.assistant(tool_calls=[ToolCall(name=name, arguments=arguments)])


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.docker
@pytest.mark.anyio
async def test_a_failed_install_is_named_by_its_spec_entry(swe_config):
    [task] = builtin_swe_tasks(names=["strkit"])
    data = SweTaskData.model_validate({**task.data, "install": ["true", "exit 7"]})
    with pytest.raises(ImageBuildError, match=r"step install: exit 7 failed \(exit 7\)"):
        await ensure_env_image(data, base=swe_config().base_image)


@pytest.mark.docker
@pytest.mark.anyio
async def test_images_auto_falls_back_to_building_when_no_registry_answers(swe_config):
    [task] = builtin_swe_tasks(names=["strkit"])
    data = SweTaskData.model_validate(task.data)
    built = await ensure_env_image(data, base=swe_config().base_image)
    auto = await ensure_env_image(data, base=swe_config().base_image, images="auto")
    assert auto.tag == built.tag  # SWE-bench's image could not be pulled here: the local build
    with pytest.raises(ImageBuildError, match=r"swebench/sweb.eval.x86_64.traject_1776_strkit-1:latest cannot be "
                                              r"pulled"):
        await ensure_env_image(data, base=swe_config().base_image, images="official")


async def _python_episode(swe_config, python: str) -> None:
    [task] = builtin_swe_tasks(names=["strkit"])
    data = {**task.data, "python": python}
    task = Task(id=task.id, prompt=task.prompt, data=data)
    cfg = swe_config()
    cfg = cfg.model_copy(update={"base_image": "traject/base:latest"})  # the default: python picks the suite
    patch = data["patch"]
    script = [call("bash", command="python3 -c 'import sys; print(sys.version.split()[0])'"),
              call("file_editor", command="create", path="change.patch", file_text=patch),
              call("bash", command="cd /workspace/repo && git apply ../change.patch"), call("submit")]
    traj = await AgentLoop(ScriptedPolicy(script)).run(SweEnv(cfg), task)
    assert traj.status is Status.COMPLETED, traj.error
    assert traj.steps[0].tool_results[0].content.strip().startswith(python + ".")
    assert traj.steps[-1].info["swe"]["resolved"], traj.steps[-1].info["test_run"]["output_tail"]
    assert traj.steps[-1].info["swe"]["log_parser"] == "pytest"  # traject/strkit: not SWE-bench's


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.anyio
async def test_python_3_13_instance_runs_on_trixie(swe_config):
    """One suite beyond the default is built in CI (once, then cached by its content tag)."""
    await _python_episode(swe_config, "3.13")


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.skipif(not os.environ.get("TRAJECT_TEST_ALL_SUITES"),
                    reason="builds the bullseye base (minutes): set TRAJECT_TEST_ALL_SUITES=1")
async def test_python_3_9_instance_runs_on_bullseye(swe_config):
    await _python_episode(swe_config, "3.9")
