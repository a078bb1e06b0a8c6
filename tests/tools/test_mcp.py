"""MCP servers, real ones: a stdio subprocess and a streamable-HTTP server on 127.0.0.1."""

import socket
import subprocess
import sys
import textwrap
import time

import pytest

pytest.importorskip("mcp", reason="MCP tests need the 'mcp' extra")

from traject.agents import AgentLoop, ScriptedPolicy  # noqa: E402
from traject.environments import ToolEnv  # noqa: E402
from traject.tools.mcp import MCPServerConfig, MCPToolset  # noqa: E402
from traject.types import InfraError, Message, Status, Task, ToolCall  # noqa: E402

SERVER = textwrap.dedent('''
    import sys
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("calc")
    memory = []

    @server.tool()
    def add(a: int, b: int) -> str:
        """Add two integers."""
        return str(a + b)

    @server.tool()
    def remember(text: str) -> str:
        """Remember text for this session."""
        memory.append(text)
        return f"{len(memory)} items"

    @server.tool()
    def fail() -> str:
        """Always fails."""
        raise ValueError("nope")

    if __name__ == "__main__":
        if len(sys.argv) > 1:
            server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
        else:
            server.run()
''')


@pytest.fixture
def server_script(tmp_path):
    path = tmp_path / "calc_server.py"
    path.write_text(SERVER)
    return path


def _calls(*calls):
    return ScriptedPolicy([Message.assistant("", tool_calls=list(calls)), Message.assistant("done")])


@pytest.mark.anyio
async def test_stdio_server_tools_listed_and_called(server_script):
    env = ToolEnv([MCPToolset(command=sys.executable, args=[str(server_script)], prefix="calc_")])
    policy = _calls(ToolCall(name="calc_add", arguments={"a": 2, "b": 40}),
                    ToolCall(name="calc_fail"),
                    ToolCall(name="calc_add", arguments={"a": 1}),
                    ToolCall(name="calc_remember", arguments={"text": "x"}))
    traj = await AgentLoop(policy).run(env, Task(id="t", prompt="go"))
    assert traj.status is Status.COMPLETED, traj.error
    obs = traj.steps[0].observations
    assert obs[0].text == "42"
    assert traj.steps[0].tool_results[1].is_error and "Error executing tool fail" in obs[1].text
    assert "missing required argument 'b'" in obs[2].text
    assert obs[3].text == "1 items"
    # a fresh episode gets a fresh server: state does not leak
    traj2 = await AgentLoop(_calls(ToolCall(name="calc_remember", arguments={"text": "y"}))).run(env, Task(id="t2", prompt="go"))
    assert traj2.steps[0].observations[0].text == "1 items"


@pytest.mark.anyio
async def test_schema_comes_from_the_server(server_script):
    toolset = MCPToolset(command=sys.executable, args=[str(server_script)])
    env = ToolEnv([toolset])
    await env.reset(Task(id="t", prompt="go"))
    try:
        schemas = {t.name: t for t in env.tools}
        assert set(schemas) == {"add", "remember", "fail"}
        assert schemas["add"].parameters["required"] == ["a", "b"]
        assert schemas["add"].description == "Add two integers."
    finally:
        await env.aclose()


@pytest.mark.anyio
async def test_server_that_cannot_start_is_infra_error(tmp_path):
    env = ToolEnv([MCPToolset(command=sys.executable, args=[str(tmp_path / "missing.py")], connect_timeout_s=10)])
    with pytest.raises(InfraError, match="could not start the MCP server"):
        await env.reset(Task(id="t", prompt="go"))


def test_config_needs_one_transport():
    with pytest.raises(ValueError, match="exactly one"):
        MCPServerConfig()
    with pytest.raises(ValueError, match="exactly one"):
        MCPServerConfig(command="x", url="http://127.0.0.1:1/mcp")


@pytest.mark.anyio
async def test_streamable_http_server(server_script):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(server_script), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        env = ToolEnv([MCPToolset(url=f"http://127.0.0.1:{port}/mcp")])
        traj = await AgentLoop(_calls(ToolCall(name="add", arguments={"a": 5, "b": 6}))).run(env, Task(id="t", prompt="go"))
        assert traj.status is Status.COMPLETED, traj.error
        assert traj.steps[0].observations[0].text == "11"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
