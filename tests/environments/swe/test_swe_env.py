"""The SWE env against a real Docker daemon: images, episodes, tests as reward."""

from __future__ import annotations

import json
import subprocess

import pytest

from traject.agents.loop import AgentLoop
from traject.agents.rollouts import Rollouts
from traject.agents.scripted import ScriptedPolicy
from traject.environments.swe import SweEnv, SweTaskData, builtin_swe_tasks, ensure_env_image, load_swebench, swe_metrics
from traject.sandboxes.images import cache_dir
from traject.types import Message, Status, Task, ToolCall

pytestmark = [pytest.mark.docker, pytest.mark.anyio]


def call(name: str, **arguments) -> Message:
    return Message.assistant(tool_calls=[ToolCall(name=name, arguments=arguments)])


def apply_patch_script(patch: str, *, then_submit: bool = True) -> list[Message]:
    """The agent writes ``patch`` with the file editor and applies it with bash."""
    script = [call("file_editor", command="create", path="change.patch", file_text=patch),
              call("bash", command="cd /workspace/repo && git apply ../change.patch && rm ../change.patch")]
    return script + ([call("submit")] if then_submit else [])


def by_task(trajs):
    return {(t.task_id, t.sample_index): t for t in trajs}


async def test_gold_patch_resolves_and_empty_patch_does_not(swe_config):
    tasks = builtin_swe_tasks()
    env = lambda: SweEnv(swe_config())  # noqa: E731

    def script(messages, tools):
        task_id = next(t.id for t in tasks if t.prompt == messages[1].text)
        k = sum(1 for m in messages if m.role == "assistant")
        from traject.episode import current_episode

        if current_episode().sample_index == 1:  # the empty patch: submit at once
            return call("submit")
        gold = next(t for t in tasks if t.id == task_id).data["patch"]
        return apply_patch_script(gold)[k]

    trajs = await Rollouts(ScriptedPolicy(script), env, group_size=2, concurrency=3).run(tasks)
    got = by_task(trajs)
    for task in tasks:
        gold, empty = got[(task.id, 0)], got[(task.id, 1)]
        assert gold.status is Status.COMPLETED, (task.id, gold.error)
        last = gold.steps[-1].info
        assert last["swe"]["resolved"] and last["swe"]["submitted"] and last["swe"]["modified"], last
        assert gold.reward.components["outcome/resolved"] == 1.0 and gold.reward.success
        assert gold.final_answer == last["swe"]["patch"] and "diff --git" in gold.final_answer
        data = SweTaskData.model_validate(task.data)
        statuses = last["test_run"]["statuses"]
        assert all(statuses[t] == "PASSED" for t in data.FAIL_TO_PASS + data.PASS_TO_PASS), statuses
        assert empty.status is Status.COMPLETED
        e = empty.steps[-1].info
        assert e["swe"]["submitted"] and not e["swe"]["modified"] and not e["swe"]["resolved"]
        assert any(e["test_run"]["statuses"].get(t) == "FAILED" for t in data.FAIL_TO_PASS)
        assert empty.reward.info["gates_open"] == ["outcome"] and not empty.reward.success
        assert gold.reward.total > empty.reward.total
    m = swe_metrics(trajs)
    assert (m.completion_rate, m.modification_rate, m.resolve_rate) == (1.0, 0.5, 0.5)


async def test_episode_outcomes_and_isolation(swe_config):
    task = builtin_swe_tasks(names=["listkit"])[0]
    # A patch that changes the wrong thing: submitted and modified, but the tests fail.
    wrong = ("diff --git a/listkit/flat.py b/listkit/flat.py\n--- a/listkit/flat.py\n+++ b/listkit/flat.py\n"
             "@@ -1,2 +1,3 @@\n def flatten(xss):\n+    # faster\n     return [x for xs in xss for x in xs]\n")
    traj = await AgentLoop(ScriptedPolicy(apply_patch_script(wrong))).run(SweEnv(swe_config()), task)
    swe = traj.steps[-1].info["swe"]
    assert swe["modified"] and not swe["resolved"] and traj.reward.components["outcome/swe_outcome"] == 0.0
    assert [s.info["swe"]["edited"] for s in traj.steps] == [False, True, False]

    # Editing the test file instead of the code does not help: it is reset before the test patch.
    cheat = [call("bash", command="cd /workspace/repo && printf 'def test_chunk_remainder():\\n    pass\\n' >> tests/test_seq.py"),
             call("submit")]
    traj = await AgentLoop(ScriptedPolicy(cheat)).run(SweEnv(swe_config()), task)
    assert traj.steps[-1].info["test_run"]["statuses"]["tests/test_seq.py::test_chunk_remainder"] == "FAILED"

    # Turns run out without a submit: no tests, the lowest outcome; the steps are not paid.
    idle = [call("bash", command="cd /workspace/repo && python3 -m pytest -q tests"),
            call("bash", command="cd /workspace/repo && echo '# note' >> README.md")]
    traj = await AgentLoop(ScriptedPolicy(idle)).run(SweEnv(swe_config(max_turns=2)), task)
    assert traj.status is Status.MAX_TURNS and "test_run" not in traj.steps[-1].info
    swe = traj.steps[-1].info["swe"]
    assert not swe["submitted"] and swe["modified"] and traj.steps[0].info["swe"]["tests_run"]
    assert traj.reward.total == -1.0 and traj.reward.components["ungated_total"] > -1.0

    # Every episode starts from a fresh container at base_commit: the README edit is gone.
    probe = [call("bash", command="cd /workspace/repo && git status --porcelain && git rev-parse HEAD"), call("submit")]
    traj = await AgentLoop(ScriptedPolicy(probe)).run(SweEnv(swe_config()), task)
    assert traj.steps[0].tool_results[0].content.strip() == task.data["base_commit"]


async def test_mirror_and_image_cache(swe_config, tmp_path):
    task = builtin_swe_tasks(names=["strkit"])[0]
    data = SweTaskData.model_validate(task.data)
    # A fixed place, so that the image built from it is cached from one test run to the next.
    repos = cache_dir() / "swe" / "test-mirrors" / data.base_commit[:12]
    mirror = repos / "traject__strkit.git"
    if not mirror.is_dir():
        subprocess.run(["git", "clone", "-q", "--mirror", data.repo_path, str(mirror)], check=True)
    record = {k: v for k, v in task.data.items() if k != "repo_path"}
    record["FAIL_TO_PASS"], record["PASS_TO_PASS"] = json.dumps(data.FAIL_TO_PASS), json.dumps(data.PASS_TO_PASS)
    path = tmp_path / "mirror.jsonl"
    path.write_text(json.dumps(record) + "\n")
    [from_mirror] = load_swebench(path, repos_dir=repos)
    assert from_mirror.data["repo_path"] == str(mirror.resolve())

    cfg = swe_config()
    first = await ensure_env_image(SweTaskData.model_validate(from_mirror.data), base=cfg.base_image)
    again = await ensure_env_image(SweTaskData.model_validate(from_mirror.data), base=cfg.base_image)
    assert again.tag == first.tag  # cached by content

    traj = await AgentLoop(ScriptedPolicy(apply_patch_script(data.patch))).run(SweEnv(cfg), from_mirror)
    assert traj.status is Status.COMPLETED and traj.steps[-1].info["swe"]["resolved"], traj.error


async def test_bad_base_commit_is_an_infra_error(swe_config):
    task = builtin_swe_tasks(names=["datekit"])[0]
    broken = Task(id="broken", prompt=task.prompt, data={**task.data, "base_commit": "0" * 40})
    traj = await AgentLoop(ScriptedPolicy([call("submit")])).run(SweEnv(swe_config()), broken)
    assert traj.status is Status.INFRA_ERROR and "base_commit" in traj.error
