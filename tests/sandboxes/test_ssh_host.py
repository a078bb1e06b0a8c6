"""A Docker host reached over ssh (ssh://USER@127.0.0.1:PORT): a real sshd whose sessions talk
to the second daemon, and the ssh client on PATH (``docker system dial-stdio``, as the docker
CLI does). Remote: no shared filesystem, so the stdio channel; counted by admission control."""

from __future__ import annotations

import anyio
import pytest
from sandbox_support import RUN_ID, RUN_LABEL, test_config

from traject.sandboxes import admission, open_sandbox
from traject.sandboxes.docker_client import docker_host, get_client

pytestmark = [pytest.mark.anyio, pytest.mark.docker]


def ours(host: str) -> list[str]:
    api = get_client(host=host).api
    return [c["Id"] for c in api.containers(all=True, filters={"label": f"{RUN_LABEL}={RUN_ID}"})]


async def test_a_sandbox_on_an_ssh_host_runs_over_ssh_on_the_stdio_channel_and_holds_a_slot(
        ssh_host, second_daemon, docker_image, isolated_admission):
    config = test_config(backend="docker", image=docker_image, hosts=(ssh_host.url,), host_cap=1)
    logins = ssh_host.accepted_logins()
    async with await open_sandbox(config) as sb:
        assert sb.host == ssh_host.url and sb.remote
        assert sb.channel_kind == "stdio" and sb.run_dir is None
        assert sb.start_timings["daemon_s"] > 0 and sb.start_timings["executor_s"] > 0
        r = await sb.exec("echo over ssh; id -u", timeout=10)
        assert (r.exit_code, r.stdout) == (0, "over ssh\n1000\n")
        await sb.write_file("/workspace/a.txt", b"x" * 200_000)
        assert await sb.read_file("/workspace/a.txt") == b"x" * 200_000
        # sshd's sessions reach the second daemon: the container is there, not on this machine's
        assert ours(second_daemon.url) == [sb.container_id]
        assert sb.container_id not in ours(docker_host())
        assert admission.held(ssh_host.url, "run", 1) == 1
        with anyio.move_on_after(1.0) as waited:
            await open_sandbox(config)
        assert waited.cancelled_caught, "the ssh host is at its cap of 1: a second sandbox waits"
    assert ssh_host.accepted_logins() > logins, "the docker API calls went through sshd"
    assert admission.held(ssh_host.url, "run", 1) == 0
    assert ours(second_daemon.url) == []


async def test_cancelling_an_exec_on_an_ssh_host_kills_the_command_and_the_channel_carries_on(
        ssh_host, docker_image, isolated_admission):
    config = test_config(backend="docker", image=docker_image, hosts=(ssh_host.url,))
    async with await open_sandbox(config) as sb:
        with anyio.move_on_after(1.0):
            await sb.exec("sleep 30", timeout=60)
        with anyio.fail_after(20):
            while "sleep 30" in (await sb.exec("ps -eo args", timeout=10)).stdout:
                await anyio.sleep(0.1)
        rs = []
        async with anyio.create_task_group() as tg:
            for i in range(8):  # many requests multiplexed over the one ssh stream
                async def one(i: int = i) -> None:
                    rs.append((await sb.exec(f"echo {i}", timeout=20)).stdout)

                tg.start_soon(one)
        assert sorted(rs) == sorted(f"{i}\n" for i in range(8))


async def test_an_ssh_host_that_does_not_answer_is_named_and_the_others_carry_on(
        ssh_host, docker_image, isolated_admission, caplog):
    import logging

    from traject.sandboxes import sandbox_factory

    dead = "ssh://root@127.0.0.1:9"  # nothing listens there: ssh exits at once
    config = test_config(backend="docker", image=docker_image, hosts=(dead, ssh_host.url))
    with caplog.at_level(logging.WARNING, logger="traject.sandboxes.hosts"):
        sandbox_factory(config)
        async with await open_sandbox(config) as sb:
            assert sb.host == ssh_host.url
    named = [r.getMessage() for r in caplog.records if dead in r.getMessage()]
    assert len(named) == 1 and "does not answer" in named[0]
