"""Harbor task directories (harbor 0.25 format) written here: loaded as tasks, their images built
from their own environment/Dockerfile by the real Docker daemon, the agent working in them with
bash and file_editor, their own tests/test.sh the reward."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
from sandbox_support import RUN_ID, RUN_LABEL, docker_image, no_container_left_behind  # noqa: F401

import traject
from traject.agents.loop import AgentLoop
from traject.agents.scripted import ScriptedPolicy
from traject.interop.harbor import HarborTaskError, resolve_dockerfile, workdir_of
from traject.sandboxes.config import SandboxConfig
from traject.testing.harbor_reference import HARBOR_REQUIREMENT, harbor_image, harbor_reads
from traject.types import Message, Status, ToolCall

TEST_SH_TXT = """#!/bin/bash
if [ "$(cat /app/answer.txt 2>/dev/null | tr -d '[:space:]')" = "$EXPECTED" ]; then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi
"""

TEST_SH_JSON = """#!/bin/bash
cd /app
exists=0; correct=0
[ -f greeting.py ] && exists=1
[ "$(python3 greeting.py 2>/dev/null)" = "hello, harbor" ] && correct=1
echo "{\\"reward\\": $correct, \\"file_exists\\": $exists}" > /logs/verifier/reward.json
"""


def write_task(root: Path, name: str, *, dockerfile: str, instruction: str, test_sh: str,
               files: dict[str, str] | None = None, toml: str = "") -> Path:
    task = root / name
    (task / "environment").mkdir(parents=True)
    (task / "tests").mkdir()
    (task / "environment" / "Dockerfile").write_text(textwrap.dedent(dockerfile))
    for rel, text in (files or {}).items():
        (task / "environment" / rel).write_text(text)
    (task / "instruction.md").write_text(instruction)
    (task / "tests" / "test.sh").write_text(test_sh)
    (task / "task.toml").write_text(textwrap.dedent(f"""\
        schema_version = "1.4"
        [task]
        name = "test/{name}"
        [verifier]
        timeout_sec = 60.0
        {toml}
        [agent]
        timeout_sec = 120.0
        """))
    return task


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("harbor")
    write_task(root, "count-words", instruction="<!-- harbor-canary GUID 0f3c -->\n\n"
                                                "Write the number of words in /app/words.txt to /app/answer.txt.",
               dockerfile="""\
                   FROM ubuntu:24.04
                   WORKDIR /app
                   COPY words.txt /app/words.txt
                   RUN echo built > /app/.built
               """, files={"words.txt": "the quick brown fox jumps\n"}, test_sh=TEST_SH_TXT,
               toml='[verifier.env]\nEXPECTED = "5"')
    write_task(root, "greeting", instruction="Create /app/greeting.py that prints 'hello, harbor'.",
               dockerfile="FROM python:3.12-slim AS base\nWORKDIR /app\n", test_sh=TEST_SH_JSON)
    write_task(root, "silent", instruction="Do nothing.", dockerfile="FROM debian:bookworm\nWORKDIR /work\n",
               test_sh="#!/bin/bash\necho 'forgot the reward file'\n")
    prebuilt = write_task(root, "prebuilt", instruction="Say hi in /home/hi.txt.", dockerfile="",
                          test_sh="#!/bin/bash\ngrep -q hi hi.txt && echo 1 > /logs/verifier/reward.txt "
                                  "|| echo 0 > /logs/verifier/reward.txt\n",
                          toml='[environment]\ndocker_image = "traject/base:latest"\nworkdir = "/home"\n'
                               'cpus = 1\nmemory_mb = 768')
    (prebuilt / "environment" / "Dockerfile").unlink()
    return root


def env(docker_image: str):  # noqa: F811 - the fixture's value
    sandbox = SandboxConfig(backend="docker", memory="1g", workspace_size="64m", read_only=False,
                            labels={RUN_LABEL: RUN_ID})
    return lambda path: traject.make(f"harbor:{path}", sandbox=sandbox, default_base=docker_image, max_turns=6)


def bash(command: str) -> Message:
    return Message.assistant(tool_calls=[ToolCall(name="bash", arguments={"command": command})])


SUBMIT = Message.assistant(tool_calls=[ToolCall(name="submit", arguments={})])


def test_loads_a_harbor_dataset(dataset: Path) -> None:
    tasks = traject.load_tasks(f"harbor:{dataset}")
    assert [t.id for t in tasks] == ["test/count-words", "test/greeting", "test/prebuilt", "test/silent"]
    first = tasks[0]
    assert first.prompt.startswith("Write the number of words")
    assert first.data["harbor"]["verifier_env"] == {"EXPECTED": "5"}
    assert first.data["harbor"]["verifier_timeout_s"] == 60.0
    assert [t.id for t in traject.load_tasks(f"harbor:{dataset / 'greeting'}")] == ["test/greeting"]


def test_unsupported_task_kinds_are_named(tmp_path: Path) -> None:
    task = write_task(tmp_path, "compose", dockerfile="FROM x\n", instruction="x", test_sh="true\n")
    (task / "environment" / "Dockerfile").unlink()
    (task / "environment" / "docker-compose.yaml").write_text("services: {}\n")
    with pytest.raises(HarborTaskError, match=r"no environment/Dockerfile \(found \['docker-compose.yaml'\]\)"):
        traject.load_tasks(f"harbor:{task}")
    with pytest.raises(HarborTaskError, match="not a directory"):
        traject.load_tasks(f"harbor:{tmp_path / 'nope'}")
    bad = write_task(tmp_path, "bad-memory", dockerfile="FROM x\n", instruction="x", test_sh="true\n",
                     toml='[environment]\nmemory = "lots"')
    with pytest.raises(HarborTaskError, match=r"task.toml: environment.memory = 'lots' is not a size like '2G'"):
        traject.load_tasks(f"harbor:{bad}")


def test_base_images_resolve_to_local_ones() -> None:
    text = "FROM ubuntu:24.04 AS build\nRUN make\nFROM build\nFROM --platform=linux/amd64 local/img:1\n"
    out, replaced = resolve_dockerfile(text, exists=lambda ref: ref == "local/img:1",
                                       base_images={"ubuntu:24.04": "my/ubuntu:local"})
    assert out == "FROM my/ubuntu:local AS build\nRUN make\nFROM build\nFROM --platform=linux/amd64 local/img:1\n"
    assert replaced == {"ubuntu:24.04": "my/ubuntu:local"}
    out, replaced = resolve_dockerfile("FROM python:3.12\n", exists=lambda ref: False, default_base="traject/base:x")
    assert out == "FROM traject/base:x\n" and replaced == {"python:3.12": "traject/base:x"}
    assert workdir_of("FROM a\nWORKDIR /app\nWORKDIR src\n", None) == "/src"
    assert workdir_of("FROM a\n", "/w") == "/w"


@pytest.mark.docker
@pytest.mark.anyio
async def test_an_agent_solves_a_task_in_its_image_and_its_tests_score_it(dataset: Path, docker_image: str) -> None:  # noqa: F811
    make = env(docker_image)
    task = traject.load_tasks(f"harbor:{dataset}")[0]
    policy = ScriptedPolicy([bash("pwd && cat .built && wc -w < words.txt > answer.txt"), SUBMIT])
    traj = await AgentLoop(policy).run(make(dataset), task)
    assert traj.status is Status.COMPLETED, traj.error
    assert traj.messages[3].text.splitlines()[:2] == ["/app", "built"]  # the Dockerfile's WORKDIR and RUN
    assert traj.reward.total == 1.0 and traj.reward.success
    # The same task, submitted without the work: the tests give 0, and that is a scored failure.
    traj = await AgentLoop(ScriptedPolicy([SUBMIT])).run(make(dataset), task)
    assert traj.reward.total == 0.0 and not traj.reward.failed and traj.trainable


@pytest.mark.docker
@pytest.mark.anyio
async def test_file_editor_and_named_rewards_from_reward_json(dataset: Path, docker_image: str) -> None:  # noqa: F811
    task = traject.load_tasks(f"harbor:{dataset}")[1]
    create = Message.assistant(tool_calls=[ToolCall(name="file_editor", arguments={
        "command": "create", "path": "greeting.py", "file_text": "print('hello, harbor')\n"})])
    traj = await AgentLoop(ScriptedPolicy([create, SUBMIT])).run(env(docker_image)(dataset), task)
    assert not traj.steps[0].tool_results[0].is_error, traj.steps[0].tool_results[0].content
    assert traj.reward.components == {"reward": 1.0, "file_exists": 1.0} and traj.reward.total == 1.0
    info = traj.steps[-1].info["harbor"]
    assert info["reward_file"] == "reward.json" and json.loads(info["reward_text"])["reward"] == 1


@pytest.mark.docker
@pytest.mark.anyio
async def test_tests_that_write_no_reward_give_a_failed_reward(dataset: Path, docker_image: str) -> None:  # noqa: F811
    task = traject.load_tasks(f"harbor:{dataset}")[3]
    traj = await AgentLoop(ScriptedPolicy([SUBMIT])).run(env(docker_image)(dataset), task)
    assert traj.reward.failed and "wrote no /logs/verifier/reward.txt" in traj.reward.error
    assert "forgot the reward file" in traj.reward.error


@pytest.mark.docker
@pytest.mark.anyio
async def test_a_prebuilt_docker_image_and_workdir_from_task_toml(dataset: Path, docker_image: str) -> None:  # noqa: F811
    task = traject.load_tasks(f"harbor:{dataset}")[2]
    assert task.data["harbor"]["docker_image"] == "traject/base:latest"
    traj = await AgentLoop(ScriptedPolicy([bash("pwd; echo hi > hi.txt"), SUBMIT])).run(env(docker_image)(dataset), task)
    assert traj.messages[3].text.startswith("/home")
    assert traj.reward.total == 1.0


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.anyio
async def test_traject_reads_tasks_as_harbors_own_loader_does(dataset: Path, docker_image: str,  # noqa: F811
                                                              tmp_path: Path) -> None:
    """The published harbor package (it needs Python >= 3.12: it runs in a sandbox of a trixie
    image with Python 3.13, built once) loads the same task directories with its own Task and
    TaskConfig; traject's loader must read every field the way harbor does. Besides the tasks
    above: one with no [task] table (named by its directory) and the deprecated `memory = "1G"`."""
    shutil.copytree(dataset, tmp_path / "ds")
    dataset = tmp_path / "ds"
    legacy = write_task(dataset, "legacy", dockerfile="FROM debian:bookworm\n", instruction="# not a marker\nhi\n",
                        test_sh="#!/bin/bash\n")
    (legacy / "task.toml").write_text('[environment]\nmemory = "1G"\ncpus = 2.0\n[verifier.env]\nN = "1"\n')
    image = harbor_image().tag
    reference = await harbor_reads(dataset, image, SandboxConfig(memory="1g", labels={RUN_LABEL: RUN_ID}))
    assert reference["harbor"] == HARBOR_REQUIREMENT.split("==")[1]
    theirs = {row["dir"]: row for row in reference["tasks"]}
    ours = {Path(t.data["harbor"]["path"]).name: t for t in traject.load_tasks(f"harbor:{dataset}")}
    assert sorted(theirs) == sorted(ours) == ["count-words", "greeting", "legacy", "prebuilt", "silent"]
    fields = ("name", "agent_timeout_s", "verifier_timeout_s", "verifier_env", "docker_image", "workdir", "cpus",
              "memory_mb")
    for name, task in ours.items():
        row = theirs[name]
        assert row["os"] == "linux"
        assert {f: task.data["harbor"][f] for f in fields} == {f: row[f] for f in fields}, name
        assert task.id == row["name"] and task.prompt == row["instruction"], name
    assert theirs["count-words"]["instruction"].startswith("Write the number")  # harbor strips the canary line
    assert theirs["prebuilt"]["cpus"] == 1 and theirs["prebuilt"]["memory_mb"] == 768
    assert theirs["legacy"]["name"] == "legacy" and theirs["legacy"]["memory_mb"] == 1024
    assert theirs["legacy"]["instruction"] == "# not a marker\nhi\n"
