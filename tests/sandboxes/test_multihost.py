"""Sandboxes over several Docker hosts: this machine's daemon (unix socket) and a second one
reached over tcp. Placement, admission slots, a host that is down at start or dies mid-run,
images loaded once per host, and failing closed when no host answers."""

from __future__ import annotations

import logging

import anyio
import pytest
from sandbox_support import RUN_ID, RUN_LABEL, test_config

from traject.sandboxes import SandboxError, admission, open_sandbox, sandbox_factory
from traject.sandboxes.docker_client import docker_host, get_client
from traject.sandboxes.hosts import docker_hosts

pytestmark = [pytest.mark.anyio, pytest.mark.docker]

DEAD = "tcp://127.0.0.1:9"  # discard port: nothing listens there


@pytest.fixture
def two_hosts(docker_image, second_daemon, isolated_admission):
    second_daemon.ensure_running()

    def make(**overrides):
        return test_config(**{"backend": "docker", "image": docker_image,
                              "hosts": (docker_host(), second_daemon.url), **overrides})

    return make


async def test_sandboxes_go_to_the_host_with_most_free_slots_and_wait_at_the_cap(two_hosts, second_daemon):
    config = two_hosts(host_cap=2)
    boxes = []
    try:
        for _ in range(4):
            boxes.append(await open_sandbox(config))
        by_host = sorted(b.host for b in boxes)
        assert by_host == sorted([docker_host()] * 2 + [second_daemon.url] * 2)
        assert {b.channel_kind for b in boxes if b.host == second_daemon.url} == {"stdio"}
        assert admission.held(second_daemon.url, "run", 2) == 2
        with anyio.move_on_after(0.5) as scope:
            boxes.append(await open_sandbox(config))
        assert scope.cancelled_caught, "both hosts are at their cap: the fifth sandbox waits"
        await boxes.pop(0).aclose()
        with anyio.fail_after(60):
            boxes.append(await open_sandbox(config))  # a slot came free
    finally:
        for b in boxes:
            await b.aclose()
    assert admission.held(second_daemon.url, "run", 2) == 0


async def test_an_unreachable_host_at_start_is_named_and_the_others_carry_on(two_hosts, caplog):
    config = two_hosts(hosts=(DEAD, docker_host()))
    with caplog.at_level(logging.WARNING, logger="traject.sandboxes.hosts"):
        sandbox_factory(config)  # the start-up check
        async with await open_sandbox(config) as sb:
            assert sb.host == docker_host()
    named = [r.getMessage() for r in caplog.records if DEAD in r.getMessage()]
    assert len(named) == 1 and "does not answer" in named[0]


async def test_no_host_answering_fails_closed_at_start(docker_image, monkeypatch):
    monkeypatch.delenv("TRAJECT_ALLOW_LOCAL_SANDBOX", raising=False)
    config = test_config(hosts=(DEAD,))  # backend "auto"
    with pytest.raises(SandboxError, match=r"no Docker host answers: tcp://127\.0\.0\.1:9.*TRAJECT_ALLOW_LOCAL_SANDBOX"):
        sandbox_factory(config)
    with pytest.raises(SandboxError, match="no Docker host answers"):
        await open_sandbox(config)
    monkeypatch.setenv("TRAJECT_ALLOW_LOCAL_SANDBOX", "1")
    sandbox_factory(config)
    async with await open_sandbox(config) as sb:
        assert sb.backend == "local"
    async with await open_sandbox(test_config(backend="local", hosts=(DEAD,))) as sb:
        assert sb.backend == "local"  # named: no daemon needed


async def test_a_missing_image_is_loaded_once_per_host_not_per_sandbox(two_hosts, second_daemon, caplog):
    tag = f"traject/scale-test:{RUN_ID}"
    local, remote = get_client().api, get_client(host=second_daemon.url).api
    local.tag(two_hosts().image, "traject/scale-test", RUN_ID)
    try:
        config = two_hosts(image=tag, hosts=(second_daemon.url,))
        with caplog.at_level(logging.WARNING, logger="traject.sandboxes.hosts"):
            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    async def one() -> None:
                        async with await open_sandbox(config) as sb:
                            assert (await sb.exec("true", timeout=10)).ok

                    tg.start_soon(one)
        loads = [r for r in caplog.records if "lacks" in r.getMessage() and tag in r.getMessage()]
        assert len(loads) == 1
    finally:
        for api in (local, remote):
            try:
                api.remove_image(tag)
            except Exception:  # noqa: BLE001 - the remote never got it when the test failed early
                pass


@pytest.mark.slow
async def test_a_host_that_dies_mid_run_fails_its_episodes_as_infra_errors_and_the_other_carries_on(
        two_hosts, second_daemon):
    from traject.agents.rollouts import Rollouts
    from traject.agents.scripted import ScriptedPolicy
    from traject.environments import ToolEnv
    from traject.tools.builtin import bash
    from traject.types import Message, Status, Task, ToolCall

    config = two_hosts()
    factory = sandbox_factory(config)
    step = Message.assistant("", tool_calls=[ToolCall(name="bash", arguments={"command": "sleep 8; echo ok"})])
    policy = ScriptedPolicy([step, Message.assistant("done")])
    rollouts = Rollouts(policy, lambda: ToolEnv([bash], sandbox=factory), concurrency=6)
    tasks = [Task(id=f"t{i}", prompt="go") for i in range(6)]
    async with anyio.create_task_group() as tg:
        results: list = []

        async def run() -> None:
            results.extend(await rollouts.run(tasks))

        tg.start_soon(run)
        with anyio.fail_after(60):
            while (admission.held(second_daemon.url, "run", config.host_cap) < 3
                   or admission.held(docker_host(), "run", config.host_cap) < 3):
                await anyio.sleep(0.05)
        await anyio.sleep(2.0)  # the episodes are in their `sleep 8`
        await anyio.to_thread.run_sync(second_daemon.kill)
    statuses = sorted(t.status.value for t in results)
    assert statuses.count(Status.INFRA_ERROR.value) == 3, [(t.status, t.error) for t in results]
    assert len(results) == 6 and all(t.status is not Status.INFRA_ERROR or "sandbox" in (t.error or "").lower()
                                      for t in results)
    assert docker_hosts.state(second_daemon.url).down is not None, "the dead host is drained"
    async with await open_sandbox(config) as sb:  # new sandboxes go to the host that answers
        assert sb.host == docker_host()
    # back up: the containers it could not remove while down are removed now
    await anyio.to_thread.run_sync(second_daemon.ensure_running)
    left = get_client(host=second_daemon.url).api.containers(all=True, filters={"label": f"{RUN_LABEL}={RUN_ID}"})
    assert left == []


def test_traject_eval_without_a_docker_host_stops_at_start_with_one_line(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "TRAJECT_DOCKER_HOSTS": DEAD}
    env.pop("TRAJECT_ALLOW_LOCAL_SANDBOX", None)
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "traject", "eval", "--env", "swe", "--policy",
                        "scripted:traject.environments.builtin.lookup:solve", "--out", str(out), "-q"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "no Docker host answers: tcp://127.0.0.1:9 (connection" in " ".join((r.stdout + r.stderr).split())
    assert not out.exists(), "nothing ran, nothing was written"
