"""A sync tool that blocks forever is cut by the tool timeout and by the episode timeout, in a
thread (abandoned) or, with isolate=True, in a worker process (killed)."""

from __future__ import annotations

import os
import threading

import anyio
import pytest
from blocking_tools import add_isolated, make_env, sleep_forever, sleep_forever_isolated

from traject.agents.loop import AgentLoop
from traject.agents.scripted import ScriptedPolicy
from traject.tools import blocking, tool
from traject.types import Message, Status, Task, ToolCall

pytestmark = pytest.mark.anyio


def _call(name: str, **args: object) -> Message:
    return Message.assistant("", tool_calls=[ToolCall(name=name, arguments=args)])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


async def test_the_tool_timeout_abandons_a_blocked_thread():
    env = make_env(tool_timeout_s=0.3)
    await env.reset(Task(id="t", prompt="go"))
    before = blocking.abandoned_threads()
    with anyio.fail_after(30):  # the old run_sync waited for the thread: 10_000 s
        result = await env.step(_call("sleep_forever"))
    assert result.tool_results[0].error_kind == "timeout"
    assert "did not finish within 0.3 s" in result.observations[0].text
    assert blocking.abandoned_threads() == before + 1
    stuck = [t for t in threading.enumerate() if t.name == "traject-tool"]
    assert stuck and all(t.daemon for t in stuck)  # cannot hold the process at exit
    await env.aclose()


async def test_the_episode_timeout_cuts_a_blocked_tool():
    loop = AgentLoop(ScriptedPolicy([_call("sleep_forever")]), episode_timeout_s=0.5)
    with anyio.fail_after(30):
        traj = await loop.run(make_env(tool_timeout_s=3600), Task(id="t", prompt="go"))
    assert traj.status is Status.TIMEOUT


async def test_an_isolated_tool_runs_in_a_worker_process_and_is_killed_on_timeout(tmp_path):
    env = make_env(tool_timeout_s=60)  # a worker's cold start imports traject: slow on a busy machine
    env._tool_specs.append(add_isolated)
    await env.reset(Task(id="t", prompt="go"))
    ok = await env.step(_call("add_isolated", a=2, b=3))
    assert ok.observations[0].text == "5"
    marker = tmp_path / "pid"
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            async def cut_when_started() -> None:
                while not marker.exists() or not marker.read_text():
                    await anyio.sleep(0.05)
                tg.cancel_scope.cancel()
            tg.start_soon(cut_when_started)
            await env.step(_call("sleep_forever_isolated", marker=str(marker)))
    pid = int(marker.read_text())
    assert pid != os.getpid()
    for _ in range(100):
        if not _alive(pid):
            break
        await anyio.sleep(0.05)
    assert not _alive(pid), "the worker process of a cancelled isolated tool must be killed"
    await env.aclose()


def test_an_isolated_tool_must_be_importable_by_name():
    with pytest.raises(TypeError, match="module-level function"):
        @tool(isolate=True)
        def local() -> str:
            """Not importable."""
            return "x"
    assert sleep_forever.isolate is False and sleep_forever_isolated.isolate is True
