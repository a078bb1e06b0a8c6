"""Hostile code and bad luck inside a DockerSandbox, against a real daemon."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import anyio
import pytest
from sandbox_support import RUN_ID, RUN_LABEL, our_containers

from traject.sandboxes import SandboxError
from traject.sandboxes.docker_client import get_client
from traject.sandboxes.docker_sandbox import DockerSandbox

pytestmark = [pytest.mark.anyio, pytest.mark.docker]


def container_exists(container_id: str, api=None) -> bool:
    import docker.errors

    try:
        (api or get_client().api).inspect_container(container_id)
        return True
    except docker.errors.NotFound:
        return False


async def test_defaults_isolate(docker_config):
    async with await DockerSandbox.create(docker_config()) as sb:
        r = await sb.exec("id -u; touch /etc/x 2>&1; touch /usr/bin/x 2>&1; "
                          "df -k --output=size /workspace /tmp | tail -2", timeout=10)
        lines = r.stdout.splitlines()
        assert lines[0] == "1000"
        assert "Read-only file system" in lines[1] and "Read-only file system" in lines[2]
        sizes = [int(x) for x in lines[3:5]]
        assert sizes == [512 * 1024, 128 * 1024]
        info = sb.api.inspect_container(sb.container_id)
        host = info["HostConfig"]
        assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"]
        assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
        assert host["Memory"] == 1 << 30 and host["PidsLimit"] == 256 and host["NanoCpus"] == 10**9
        assert info["Config"]["Labels"][RUN_LABEL] == RUN_ID


async def test_every_limit_is_configurable(docker_config):
    cfg = docker_config(memory="300m", cpus=0.5, pids_limit=50, workspace_size="32m", tmp_size="16m")
    async with await DockerSandbox.create(cfg) as sb:
        host = sb.api.inspect_container(sb.container_id)["HostConfig"]
        assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (300 << 20, 5 * 10**8, 50)
        r = await sb.exec("df -k --output=size /workspace /tmp | tail -2", timeout=10)
        assert [int(x) for x in r.stdout.split()] == [32 * 1024, 16 * 1024]


async def test_sockets_to_any_address_fail(docker_config):
    probe = textwrap.dedent("""
        import socket
        for host, port in [("1.1.1.1", 53), ("8.8.8.8", 443), ("10.0.0.1", 80), ("172.17.0.1", 2375)]:
            try:
                socket.create_connection((host, port), timeout=2).close()
                print("CONNECTED", host)
            except OSError as exc:
                print("failed", host, exc.errno)
        try:
            socket.getaddrinfo("example.com", 80)
            print("RESOLVED")
        except OSError:
            print("no dns")
    """)
    async with await DockerSandbox.create(docker_config()) as sb:
        r = await sb.exec(["python3", "-c", probe], timeout=30)
        assert "CONNECTED" not in r.stdout and "RESOLVED" not in r.stdout, r.stdout
        assert r.stdout.count("failed") == 4
        r = await sb.exec("cat /proc/net/dev | grep -v -E 'lo:|Inter|face' | wc -l", timeout=10)
        assert r.stdout.strip() == "0"  # no interface but loopback


def _pids_cgroup(container_id: str, api=None) -> tuple[int, int]:
    """(pids.current, pids.max) of a container, read on the host."""
    pid = (api or get_client().api).inspect_container(container_id)["State"]["Pid"]
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [ln.strip().split(":", 2) for ln in f]
    path = next(p for _, ctrl, p in lines if ctrl in ("pids", ""))
    base = "/sys/fs/cgroup/pids" if os.path.isdir("/sys/fs/cgroup/pids") else "/sys/fs/cgroup"
    with open(f"{base}{path}/pids.current") as f:
        current = int(f.read())
    with open(f"{base}{path}/pids.max") as f:
        limit = int(f.read())
    return current, limit


async def test_fork_bomb_is_killed_with_its_call_and_the_sandbox_recovers(docker_config):
    async with await DockerSandbox.create(docker_config(pids_limit=64)) as sb:
        t0 = time.monotonic()
        r = await sb.exec(":(){ :|:& };: ; sleep 30", timeout=3)
        assert r.timed_out
        assert time.monotonic() - t0 < 20
        after = await sb.exec("ps -e --no-headers | wc -l", timeout=10)
        assert after.exit_code == 0, after.stderr
        assert int(after.stdout) < 10, "the bomb's processes were killed with its call"


async def test_detached_fork_bomb_is_contained_by_the_pids_limit_and_the_host_stays_responsive(docker_config):
    sb = await DockerSandbox.create(docker_config(pids_limit=64))
    try:
        # the bomb runs on after the call returns (its output discarded, so that no broken
        # pipe ends it early)
        await sb.exec("nohup bash -c ':(){ :|:& };:' >/dev/null 2>&1 &", timeout=5)
        worst = 0
        for _ in range(20):
            current, limit = _pids_cgroup(sb.container_id, sb.api)
            worst = max(worst, current)
            assert limit == 64 and current <= 64
            t1 = time.monotonic()
            subprocess.run(["true"], check=True)  # the host still starts processes promptly
            assert time.monotonic() - t1 < 1.0
            await anyio.sleep(0.1)
        assert worst >= 32, "the bomb did run"
        r = await sb.exec("true", timeout=5)  # no hang: an answer, whatever it is
        assert isinstance(r.exit_code, int)
    finally:
        with anyio.fail_after(30):
            await sb.aclose()
    assert not container_exists(sb.container_id, sb.api)


async def test_allocating_past_the_memory_limit_is_an_oom_observation(docker_config):
    async with await DockerSandbox.create(docker_config(memory="96m")) as sb:
        r = await sb.exec(["python3", "-c", "x = bytearray(200 * 1024 * 1024); x[::4096] = b'1' * len(x[::4096])"],
                          timeout=60)
        assert r.oom_killed and r.exit_code == 137 and not r.timed_out
        assert "out of memory" in r.stderr
        assert (await sb.exec("echo alive", timeout=10)).stdout == "alive\n"


async def test_infinite_loop_times_out_and_the_next_call_works(docker_config):
    async with await DockerSandbox.create(docker_config()) as sb:
        r = await sb.exec(["python3", "-c", "while True: pass"], timeout=1)
        assert r.timed_out and r.exit_code == 137
        r = await sb.exec("ps -eo args --no-headers", timeout=10)
        assert "--socket" in r.stdout  # the executor itself ...
        assert "while True: pass" not in r.stdout  # ... but not the loop
        assert (await sb.exec("echo ok", timeout=10)).stdout == "ok\n"


async def test_a_huge_file_is_bounded_by_the_workspace_size(docker_config):
    async with await DockerSandbox.create(docker_config(workspace_size="64m", tmp_size="16m")) as sb:
        r = await sb.exec("dd if=/dev/zero of=big bs=1M count=500", timeout=60)
        assert r.exit_code != 0 and "No space left on device" in r.stderr
        size = int((await sb.exec("stat -c %s big", timeout=10)).stdout)
        assert size <= 64 << 20
        r = await sb.exec("dd if=/dev/zero of=/tmp/big bs=1M count=500", timeout=60)
        assert r.exit_code != 0 and "No space left on device" in r.stderr
        with pytest.raises(OSError):
            await sb.write_file("more.bin", b"x" * (8 << 20))  # the workspace is full


async def test_a_container_killed_from_outside_is_a_clear_sandbox_error(docker_config):
    sb = await DockerSandbox.create(docker_config())
    try:
        errors: list[BaseException] = []

        async def long_call() -> None:
            try:
                await sb.exec("sleep 60", timeout=120)
            except SandboxError as exc:
                errors.append(exc)

        t0 = time.monotonic()
        async with anyio.create_task_group() as tg:
            tg.start_soon(long_call)
            await anyio.sleep(0.5)
            await anyio.to_thread.run_sync(lambda: sb.api.kill(sb.container_id))
        assert time.monotonic() - t0 < 10
        assert len(errors) == 1
        assert "container" in str(errors[0]) and sb.container_id[:12] in str(errors[0])
        with anyio.fail_after(10):
            with pytest.raises(SandboxError):
                await sb.exec("true", timeout=5)
            with pytest.raises(SandboxError):
                await sb.read_file("x")
    finally:
        with anyio.fail_after(30):
            await sb.aclose()
    assert not container_exists(sb.container_id, sb.api)


async def test_cancelling_an_exec_kills_the_command_and_closing_removes_the_container(docker_config):
    sb = await DockerSandbox.create(docker_config())
    try:
        with anyio.move_on_after(0.5):
            await sb.exec("sleep 77", timeout=60)
        await anyio.sleep(0.2)
        r = await sb.exec("ps -eo args", timeout=10)
        assert "sleep 77" not in r.stdout
    finally:
        await sb.aclose()
    assert not container_exists(sb.container_id, sb.api)
    assert sb.run_dir is None or not os.path.exists(sb.run_dir)


async def test_cancelling_an_episode_leaves_no_container(docker_config):
    ids: list[str] = []

    async def episode() -> None:
        async with await DockerSandbox.create(docker_config()) as sb:
            ids.append(sb.container_id)
            await sb.exec("sleep 60", timeout=120)

    async with anyio.create_task_group() as tg:
        tg.start_soon(episode)
        while not ids:
            await anyio.sleep(0.05)
        await anyio.sleep(0.3)
        tg.cancel_scope.cancel()
    assert not container_exists(ids[0])


RUNNER = textwrap.dedent("""
    import sys, anyio
    from traject.sandboxes.config import SandboxConfig
    from traject.sandboxes.docker_sandbox import DockerSandbox

    async def main():
        cfg = SandboxConfig(backend="docker", labels={%r: %r})
        async with await DockerSandbox.create(cfg) as sb:
            print(sb.container_id, flush=True)
            await sb.exec("sleep 300", timeout=600)

    anyio.run(main)
""")


def _start_runner() -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", RUNNER % (RUN_LABEL, RUN_ID)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline().strip()
    assert line, proc.stderr.read()
    return proc, line


async def test_ctrl_c_on_the_runner_removes_the_container(docker_image):
    proc, container_id = await anyio.to_thread.run_sync(_start_runner)
    assert container_exists(container_id)
    await anyio.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    await anyio.to_thread.run_sync(lambda: proc.wait(timeout=30))
    proc.stdout.close()
    proc.stderr.close()
    assert not container_exists(container_id)


async def test_prune_removes_containers_of_a_crashed_process_and_keeps_live_ones(docker_config):
    from traject.sandboxes.prune import prune

    proc, container_id = await anyio.to_thread.run_sync(_start_runner)
    proc.kill()  # SIGKILL: no cleanup ran
    await anyio.to_thread.run_sync(proc.wait)
    proc.stdout.close()
    proc.stderr.close()
    assert container_exists(container_id)
    async with await DockerSandbox.create(docker_config()) as live:
        report = await anyio.to_thread.run_sync(prune)
        assert container_id in report.removed
        assert live.container_id in report.kept
        assert (await live.exec("echo still here", timeout=10)).exit_code == 0
    assert not container_exists(container_id)
    assert not our_containers()


async def test_a_socket_this_host_cannot_see_falls_back_to_the_stdio_channel(docker_config, monkeypatch):
    # as when this process runs in a container that talks to the host's daemon
    import traject.sandboxes.docker_sandbox as mod

    monkeypatch.setattr(mod, "SOCKET_FALLBACK_S", 0.2)
    monkeypatch.setattr(mod.DockerSandbox, "_socket_visible", staticmethod(lambda path: False))
    async with await DockerSandbox.create(docker_config()) as sb:
        assert sb.channel_kind == "stdio"
        assert (await sb.exec("echo via relay", timeout=10)).stdout == "via relay\n"
