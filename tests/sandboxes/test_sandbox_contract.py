"""The Sandbox contract, run against every backend: Docker (real daemon) and local."""

from __future__ import annotations

import signal
import time

import anyio
import pytest
from sandbox_support import test_config

from traject.sandboxes import ExecResult, InteractiveSandbox, Sandbox, SandboxError, SandboxSession, open_sandbox
from traject.sandboxes.executor_client import truncation_marker

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore::UserWarning")]


@pytest.fixture(scope="module", params=[
    pytest.param("docker", marks=pytest.mark.docker),
    pytest.param("docker_exec", marks=pytest.mark.docker),  # one docker exec per call
    pytest.param("docker_stdio", marks=pytest.mark.docker),  # the remote-daemon fast channel
    "local",
])
async def sandbox(request):
    overrides = {"backend": request.param, "output_limit": 4096}
    if request.param.startswith("docker"):
        request.getfixturevalue("docker_image")
        channel = {"docker": "socket", "docker_exec": "docker_exec", "docker_stdio": "stdio"}[request.param]
        overrides.update(backend="docker", channel=channel)
    sb = await open_sandbox(test_config(**overrides))
    yield sb
    await sb.aclose()


async def test_it_is_a_sandbox(sandbox):
    assert isinstance(sandbox, Sandbox) and isinstance(sandbox, InteractiveSandbox)
    assert sandbox.workspace.startswith("/")


async def test_exec_gives_exit_code_stdout_stderr(sandbox):
    r = await sandbox.exec("echo out; echo err >&2; exit 7", timeout=10)
    assert isinstance(r, ExecResult)
    assert (r.exit_code, r.stdout, r.stderr, r.timed_out, r.truncated) == (7, "out\n", "err\n", False, False)
    assert not r.ok and r.duration_s > 0


async def test_exec_argv_stdin_workdir_env(sandbox):
    r = await sandbox.exec(["cat"], stdin=b"piped bytes", timeout=10)
    assert r.stdout == "piped bytes"
    await sandbox.exec("mkdir -p sub/dir", timeout=10)
    r = await sandbox.exec("pwd; echo $GREETING", workdir="sub/dir", env={"GREETING": "hej"}, timeout=10)
    assert r.stdout == f"{sandbox.workspace}/sub/dir\nhej\n"
    r = await sandbox.exec("pwd", timeout=10)
    assert r.stdout.strip() == sandbox.workspace


async def test_missing_command_and_workdir(sandbox):
    r = await sandbox.exec(["no-such-binary-xyz"], timeout=10)
    assert r.exit_code == 127 and "command not found" in r.stderr
    r = await sandbox.exec(["true"], workdir="does/not/exist", timeout=10)
    assert r.exit_code == 127 and "working directory not found" in r.stderr


async def test_output_is_capped_with_an_explicit_marker_keeping_head_and_tail(sandbox):
    r = await sandbox.exec("echo START; head -c 100000 /dev/zero | tr '\\0' x; echo; echo END", timeout=20)
    assert r.truncated
    assert r.stdout.startswith("START\n") and r.stdout.endswith("END\n")
    assert "bytes of output truncated" in r.stdout
    omitted = 6 + 100001 + 4 - 4096
    assert truncation_marker(omitted) in r.stdout
    assert len(r.stdout) < 4096 + 200


async def test_timeout_kills_the_whole_process_tree_and_the_next_call_works(sandbox):
    script = (
        # Odd durations, so that the check below cannot match another process on a shared host
        # (LocalSandbox shares the host's process table).
        "sleep 3001.25 & "  # a child in the same group
        "setsid sleep 3001.5 & "  # a child that left the session
        "bash -c 'while :; do : traject-spin; done' & "
        "sleep 3001.75"
    )
    t0 = time.monotonic()
    r = await sandbox.exec(script, timeout=1.5)
    assert r.timed_out and not r.ok
    assert time.monotonic() - t0 < 8
    assert "timed out" in r.stderr
    ps = await sandbox.exec("ps -eo args", timeout=10)
    assert ps.exit_code == 0, ps.stderr
    assert "sleep 3001." not in ps.stdout and "traject-spin" not in ps.stdout, ps.stdout
    assert (await sandbox.exec("echo next", timeout=10)).stdout == "next\n"


async def test_background_process_does_not_hold_the_call(sandbox):
    t0 = time.monotonic()
    r = await sandbox.exec("sleep 30 & echo started", timeout=20)
    assert r.stdout == "started\n" and r.exit_code == 0
    assert time.monotonic() - t0 < 5
    await sandbox.exec("pkill -f 'sleep 30' || true", timeout=10)


async def test_files_round_trip_and_errors(sandbox):
    payload = bytes(range(256)) * 1000
    await sandbox.write_file("nested/dir/blob.bin", payload)
    assert await sandbox.read_file("nested/dir/blob.bin") == payload
    assert await sandbox.read_file(f"{sandbox.workspace}/nested/dir/blob.bin") == payload
    r = await sandbox.exec("wc -c < nested/dir/blob.bin", timeout=10)
    assert r.stdout.strip() == str(len(payload))
    with pytest.raises(FileNotFoundError):
        await sandbox.read_file("nope.txt")
    with pytest.raises(IsADirectoryError):
        await sandbox.read_file("nested")


async def test_concurrent_execs(sandbox):
    results: list[str] = []

    async def one(i: int) -> None:
        r = await sandbox.exec(f"sleep 1; echo {i}", timeout=20)
        results.append(r.stdout.strip())

    t0 = time.monotonic()
    async with anyio.create_task_group() as tg:
        for i in range(4):
            tg.start_soon(one, i)
    assert sorted(results) == [str(i) for i in range(4)]
    assert time.monotonic() - t0 < 3.5  # side by side: one after another takes 4 s or more


async def test_session_keeps_state_and_survives_an_interrupt(sandbox):
    session = await sandbox.open_session(["bash", "--noprofile", "--norc"])
    assert isinstance(session, SandboxSession)
    r = await session.run(b"cd /tmp; X=5\nprintf 'MARK%s\\n' $?\n", marker="MARK", timeout=10)
    assert (r.status, r.timed_out, r.exited) == ("0", False, False)
    r = await session.run(b"sleep 60\nprintf 'MARK%s\\n' $?\n", marker="MARK", timeout=1)
    assert r.timed_out and not r.exited and r.status == "137"
    r = await session.run(b"echo $X $PWD\nprintf 'MARK%s\\n' $?\n", marker="MARK", timeout=10)
    assert r.output == "5 /tmp\n" and r.status == "0"
    await session.aclose()
    assert session.closed
    with pytest.raises(SandboxError):
        await session.run(b"echo\n", marker="MARK", timeout=5)


async def test_session_that_exits_reports_it(sandbox):
    session = await sandbox.open_session(["bash", "--noprofile", "--norc"])
    r = await session.run(b"echo bye; exit 4\n", marker="MARK", timeout=10)
    assert r.exited and r.exit_code == 4 and r.output == "bye\n"
    assert session.closed


async def test_session_interrupt_signal_reaches_the_process(sandbox):
    code = (
        "import sys, time\n"
        "for line in sys.stdin:\n"
        "    try:\n"
        "        time.sleep(float(line))\n"
        "        print('slept')\n"
        "    except KeyboardInterrupt:\n"
        "        print('interrupted')\n"
        "    print('MARK', flush=True)\n"
    )
    session = await sandbox.open_session(["python3", "-u", "-c", code], interrupt_signal=signal.SIGINT)
    r = await session.run(b"60\n", marker="MARK", timeout=1)
    assert r.timed_out and not r.exited and r.output == "interrupted\n"
    r = await session.run(b"0\n", marker="MARK", timeout=10)
    assert r.output == "slept\n"
    await session.aclose()


@pytest.mark.parametrize("backend", [pytest.param("docker", marks=pytest.mark.docker), "local"])
async def test_closed_sandbox_raises_sandbox_error(request, backend):
    if backend == "docker":
        request.getfixturevalue("docker_image")
    sb = await open_sandbox(test_config(backend=backend))
    await sb.aclose()
    await sb.aclose()  # idempotent
    with pytest.raises(SandboxError):
        await sb.exec("true", timeout=5)
