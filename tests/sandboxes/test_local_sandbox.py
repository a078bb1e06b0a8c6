"""LocalSandbox: what it does without Docker, and that it says it does not isolate."""

from __future__ import annotations

import os
import subprocess

import pytest
from sandbox_support import test_config

from traject.sandboxes.local_sandbox import LocalSandbox, LocalSandboxWarning

pytestmark = pytest.mark.anyio


async def _local(**overrides) -> LocalSandbox:
    with pytest.warns(LocalSandboxWarning, match="does not isolate"):
        return await LocalSandbox.create(test_config(backend="local", **overrides))


async def test_it_warns_loudly_and_cleans_up_its_directory_and_processes():
    sb = await _local()
    assert sb.isolated is False
    r = await sb.exec("sleep 123 & echo $!", timeout=10)
    pid = int(r.stdout)
    os.kill(pid, 0)  # running
    await sb.aclose()
    assert not os.path.exists(sb.workspace)
    with pytest.raises(ProcessLookupError):
        for _ in range(100):
            os.kill(pid, 0)
            subprocess.run(["sleep", "0.01"])


async def test_the_host_environment_does_not_leak_in(monkeypatch):
    monkeypatch.setenv("TRAJECT_TEST_SECRET", "hunter2")
    sb = await _local(env={"VISIBLE": "yes"})
    try:
        r = await sb.exec("env", timeout=10)
        assert "hunter2" not in r.stdout and "VISIBLE=yes" in r.stdout
    finally:
        await sb.aclose()


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to an unprivileged user needs root")
async def test_as_root_it_runs_agent_code_as_nobody_without_network():
    sb = await _local()
    try:
        r = await sb.exec("id -u", timeout=10)
        assert r.stdout.strip() == "65534"
        if sb.network_isolated:
            probe = "import socket; socket.create_connection(('1.1.1.1', 53), timeout=2)"
            r = await sb.exec(["python3", "-c", probe], timeout=10)
            assert r.exit_code != 0 and "unreachable" in r.stderr.lower()
    finally:
        await sb.aclose()


async def test_rlimits_bound_file_size_and_memory():
    sb = await _local(workspace_size="8m", memory="512m")
    try:
        r = await sb.exec("head -c 20000000 /dev/zero > big", timeout=20)
        assert r.exit_code != 0
        assert os.path.getsize(os.path.join(sb.workspace, "big")) <= 8 << 20
        r = await sb.exec(["python3", "-c", "x = bytearray(1024 * 1024 * 1024)"], timeout=20)
        assert r.exit_code != 0 and "MemoryError" in r.stderr
    finally:
        await sb.aclose()


OWNER = """
import anyio, warnings
from traject.sandboxes.config import SandboxConfig
from traject.sandboxes.local_sandbox import LocalSandbox
warnings.simplefilter("ignore")

async def main():
    sb = await LocalSandbox.create(SandboxConfig(backend="local"))
    r = await sb.exec("sleep 300 & echo $!", timeout=10)
    print(sb.workspace, r.stdout.strip(), flush=True)
    await anyio.sleep(300)

anyio.run(main)
"""


async def test_a_killed_owner_takes_its_local_sandbox_down_with_it():
    import signal
    import sys
    import time

    import anyio

    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True, env=env)
    line = await anyio.to_thread.run_sync(proc.stdout.readline)
    workspace, pid = line.split()
    os.kill(int(pid), 0)
    proc.send_signal(signal.SIGKILL)  # no cleanup runs in the owner
    proc.wait()
    proc.stdout.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            break
        await anyio.sleep(0.1)
    else:
        raise AssertionError("the sandbox's process outlived its owner")
    while os.path.exists(workspace) and time.monotonic() < deadline:
        await anyio.sleep(0.1)
    assert not os.path.exists(workspace)
