"""The built-in sandbox tools (python, bash, file_editor) on Docker and on the local backend."""

from __future__ import annotations

import pytest
from sandbox_support import test_config

from traject.sandboxes import open_sandbox, sandbox_factory
from traject.sandboxes.docker_client import get_client
from traject.tools import ToolContext
from traject.tools.builtin import bash, bash_tool, file_editor, python, python_tool
from traject.types import InfraError, Message, Task, ToolCall

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore::UserWarning")]

BACKENDS = [pytest.param("docker", marks=pytest.mark.docker), "local"]


@pytest.fixture(params=BACKENDS)
async def ctx(request):
    if request.param == "docker":
        request.getfixturevalue("docker_image")
    sandbox = await open_sandbox(test_config(backend=request.param, output_limit=2048))
    try:
        yield ToolContext(task=Task(id="t", prompt="p"), episode_id="ep", sandbox=sandbox)
    finally:
        await sandbox.aclose()


async def run(tool, ctx, **args):
    return await tool(ctx, args)


async def test_python_keeps_state_shows_values_and_reports_errors(ctx):
    assert (await run(python, ctx, code="import math\nx = 40")).content == "(no output)"
    out = await run(python, ctx, code="def f(y):\n    return x + y\nf(2)")
    assert (out.content, out.is_error) == ("42\n", False)
    out = await run(python, ctx, code="print('a'); import sys; print('b', file=sys.stderr); math.sqrt(16)")
    assert out.content == "a\nb\n4.0\n"
    out = await run(python, ctx, code="x / 0")
    assert out.is_error and "ZeroDivisionError" in out.content and 'File "<cell>"' in out.content
    assert "python_worker" not in out.content  # the worker's own frames are hidden
    out = await run(python, ctx, code="def broken(:")
    assert out.is_error and "SyntaxError" in out.content
    out = await run(python, ctx, code="input()")
    assert out.is_error and "EOFError" in out.content
    out = await run(python, ctx, code="exit(3)")
    assert out.is_error and "keeps running" in out.content
    assert (await run(python, ctx, code="x")).content == "40\n"
    out = await run(python, ctx, code="print('y' * 10000)")
    assert out.metadata["truncated"] and "bytes of output truncated" in out.content


async def test_python_imports_workspace_modules_and_a_shadowing_file_does_not_break_it(ctx):
    await ctx.sandbox.write_file("helper.py", b"def answer():\n    return 42\n")
    await ctx.sandbox.write_file("ast.py", b"raise SystemExit('shadowed')\n")
    out = await run(python, ctx, code="import helper\nhelper.answer()")
    assert out.content == "42\n" and not out.is_error


async def test_python_timeout_interrupts_the_cell_and_keeps_the_interpreter(ctx):
    quick = python_tool(timeout_s=1)
    await run(python, ctx, code="kept = 'yes'")
    out = await run(quick, ctx, code="while True:\n    pass")
    assert out.is_error and out.metadata["timed_out"] and not out.metadata["exited"]
    assert "KeyboardInterrupt" in out.content and "variables are kept" in out.content
    out = await run(quick, ctx, code="import subprocess\nsubprocess.run(['sleep', '60'])")
    assert out.metadata["timed_out"] and not out.metadata["exited"]
    assert (await run(python, ctx, code="kept")).content == "'yes'\n"


async def test_python_that_ignores_interrupts_is_restarted_and_says_so(ctx):
    quick = python_tool(timeout_s=1)
    await run(python, ctx, code="lost = 1")
    code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: time.sleep(0.1)"
    out = await run(quick, ctx, code=code)
    assert out.metadata["exited"] and "state is lost" in out.content
    out = await run(python, ctx, code="'lost' in globals()")
    assert out.content.startswith("[a fresh Python interpreter was started")
    assert out.content.endswith("False\n")


async def test_bash_keeps_cwd_env_and_functions(ctx):
    await run(bash, ctx, command="mkdir -p sub && cd sub && export GREETING=hi && greet() { echo \"$GREETING $1\"; }")
    out = await run(bash, ctx, command="pwd; greet there")
    assert out.content == f"{ctx.sandbox.workspace}/sub\nhi there\n" and not out.is_error
    out = await run(bash, ctx, command="echo oops >&2; false")
    assert out.is_error and out.content == "oops\n[exit code 1]" and out.metadata["exit_code"] == 1
    out = await run(bash, ctx, command="cat")  # stdin is /dev/null, not the session's protocol
    assert out.content == "(no output)" and not out.is_error
    out = await run(bash, ctx, command="echo 'unterminated")
    assert out.is_error and "unexpected EOF" in out.content
    out = await run(bash, ctx, command="set -x; echo traced")
    assert "traced" in out.content and "__TRAJECT" not in out.content and "read -r" not in out.content
    out = await run(bash, ctx, command="set +x; echo $GREETING")
    assert out.content.endswith("hi\n")


async def test_bash_timeout_kills_the_command_tree_and_keeps_the_shell(ctx):
    quick = bash_tool(timeout_s=1)
    await run(bash, ctx, command="cd /tmp; KEEP=1")
    out = await run(quick, ctx, command="(sleep 91; echo never) & sleep 92")
    assert out.is_error and out.metadata["timed_out"] and not out.metadata["exited"]
    assert "the shell is kept" in out.content
    out = await run(bash, ctx, command="echo $KEEP $PWD; ps -eo args | grep -c '[s]leep 9' || true")
    lines = [ln for ln in out.content.splitlines() if "Killed" not in ln]  # bash's job notices
    assert lines == ["1 /tmp", "0"]


async def test_bash_exit_restarts_the_shell_and_says_so(ctx):
    await run(bash, ctx, command="export GONE=1")
    out = await run(bash, ctx, command="exit 3")
    assert out.is_error and out.metadata["exited"] and "exit code 3" in out.content
    out = await run(bash, ctx, command="echo \"[$GONE]\"")
    assert out.content.startswith("[a fresh shell was started") and out.content.endswith("[]\n")


async def test_file_editor_view_create_replace_insert(ctx):
    out = await run(file_editor, ctx, command="create", path="src/app.py", file_text="a = 1\nb = 2\nb = 2\n")
    assert not out.is_error and "Created src/app.py" in out.content
    out = await run(file_editor, ctx, command="view", path="src/app.py")
    assert out.content == "     1\ta = 1\n     2\tb = 2\n     3\tb = 2"
    out = await run(file_editor, ctx, command="str_replace", path="src/app.py", old_str="b = 2", new_str="c")
    assert out.is_error and "occurs 2 times" in out.content and "[2, 3]" in out.content
    out = await run(file_editor, ctx, command="str_replace", path="src/app.py", old_str="zzz", new_str="c")
    assert out.is_error and "not found" in out.content
    out = await run(file_editor, ctx, command="str_replace", path="src/app.py", old_str="a = 1\nb = 2", new_str="a = 10")
    assert not out.is_error
    out = await run(file_editor, ctx, command="insert", path="src/app.py", insert_line=0, new_str="# top")
    assert not out.is_error
    assert (await ctx.sandbox.read_file("src/app.py")).decode() == "# top\na = 10\nb = 2\n"
    out = await run(file_editor, ctx, command="view", path="src/app.py", view_range=[2, -1])
    assert out.content == "     2\ta = 10\n     3\tb = 2"
    out = await run(file_editor, ctx, command="view", path="src/app.py", view_range=[3, 9])
    assert out.is_error and "outside" in out.content
    out = await run(file_editor, ctx, command="insert", path="src/app.py", insert_line=99, new_str="x")
    assert out.is_error and "outside 0-3" in out.content
    out = await run(file_editor, ctx, command="create", path="src/app.py", file_text="clobber")
    assert out.is_error and "already exists" in out.content
    out = await run(file_editor, ctx, command="view", path=".")
    assert "src/app.py" in out.content
    out = await run(file_editor, ctx, command="view", path="missing.txt")
    assert out.is_error and "no such file" in out.content
    await ctx.sandbox.write_file("blob.bin", b"\xff\xfe\x00")
    out = await run(file_editor, ctx, command="str_replace", path="blob.bin", old_str="x", new_str="y")
    assert out.is_error and "not UTF-8" in out.content


@pytest.mark.parametrize("path", ["../outside.txt", "src/../../x", "/etc/passwd", "~/x", ""])
async def test_file_editor_refuses_paths_outside_the_workspace(ctx, path):
    out = await run(file_editor, ctx, command="create", path=path, file_text="x")
    assert out.is_error and out.content.startswith("Error:")
    out = await run(file_editor, ctx, command="view", path=path)
    assert out.is_error


async def test_file_editor_refuses_a_symlink_that_leads_out(ctx):
    await ctx.sandbox.exec("ln -s /etc etc_link && ln -s .. up", timeout=10)
    for path in ("etc_link/passwd", "up/anything"):
        out = await run(file_editor, ctx, command="view", path=path)
        assert out.is_error and "outside the workspace" in out.content


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_tools_refuse_a_sandbox_without_sessions(anyio_backend):
    class Minimal:  # the minimal Sandbox contract only
        async def exec(self, cmd, *, timeout, stdin=None, workdir=None, env=None): ...
        async def write_file(self, path, data): ...
        async def read_file(self, path): ...
        async def aclose(self): ...

    c = ToolContext(task=Task(id="t", prompt="p"), episode_id="ep", sandbox=Minimal())
    for tool, args in ((python, {"code": "1"}), (bash, {"command": "ls"}),
                       (file_editor, {"command": "view", "path": "."})):
        with pytest.raises(TypeError, match="InteractiveSandbox"):
            await tool(c, args)


async def test_tool_arguments_are_validated_by_the_schema(ctx):
    from traject.tools import ToolArgumentError

    with pytest.raises(ToolArgumentError, match="command"):
        await run(file_editor, ctx, command="delete", path="x")
    assert set(python.schema.parameters["required"]) == {"code"}
    assert set(bash.schema.parameters["required"]) == {"command"}


@pytest.mark.docker
async def test_python_out_of_memory_is_reported_and_the_next_call_starts_fresh(docker_image):
    sandbox = await open_sandbox(test_config(backend="docker", memory="128m"))
    try:
        c = ToolContext(task=Task(id="t", prompt="p"), episode_id="ep", sandbox=sandbox)
        out = await run(python, c, code="hog = bytearray(400 * 1024 * 1024)")
        assert out.is_error and out.metadata["oom_killed"] and "out of memory" in out.content
        out = await run(python, c, code="1 + 1")
        assert "fresh Python interpreter" in out.content and out.content.endswith("2\n")
    finally:
        await sandbox.aclose()


@pytest.mark.docker
async def test_tool_env_runs_the_tools_in_a_sandbox_and_closes_it(docker_image):
    from traject.environments import ToolEnv

    env = ToolEnv([python, bash, file_editor], sandbox=sandbox_factory(test_config(backend="docker")))
    await env.reset(Task(id="t", prompt="write and run a script"))
    container_id = env.ctx.sandbox.container_id
    step = await env.step(Message.assistant("", tool_calls=[
        ToolCall(name="file_editor", arguments={"command": "create", "path": "hi.py", "file_text": "print('hi')\n"}),
    ]))
    assert not step.tool_results[0].is_error
    step = await env.step(Message.assistant("", tool_calls=[
        ToolCall(name="bash", arguments={"command": "python3 hi.py"}),
        ToolCall(name="python", arguments={"code": "open('hi.py').read()"}),
    ]))
    assert [r.content for r in step.tool_results] == ["hi\n", "\"print('hi')\\n\"\n"]
    await env.aclose()
    assert not [c for c in get_client().api.containers(all=True) if c["Id"] == container_id]


@pytest.mark.docker
async def test_a_sandbox_killed_mid_episode_is_an_infra_error(docker_image):
    from traject.environments import ToolEnv

    env = ToolEnv([bash], sandbox=sandbox_factory(test_config(backend="docker")))
    await env.reset(Task(id="t", prompt="go"))
    get_client().api.kill(env.ctx.sandbox.container_id)
    with pytest.raises(InfraError, match="container"):
        await env.step(Message.assistant("", tool_calls=[ToolCall(name="bash", arguments={"command": "ls"})]))
    await env.aclose()
