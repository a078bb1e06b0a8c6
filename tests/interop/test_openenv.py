"""OpenEnv both ways: openenv-core's own client against `traject serve-env`'s app, and traject
against an environment server built with openenv-core."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from openenv.core.env_server import create_fastapi_app
from fastmcp import FastMCP
from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.mcp_environment import MCPEnvironment
from openenv.core.env_server.mcp_types import CallToolAction, CallToolObservation
from openenv.core.env_server.types import Action, Observation, State
from openenv.core.generic_client import GenericEnvClient
from pydantic import Field

import traject
from traject.agents.loop import AgentLoop
from traject.agents.scripted import ScriptedPolicy
from traject.environments.registry import load_tasks, make
from traject.interop.openenv_client import UnsupportedActionSpace
from traject.interop.openenv_server import create_openenv_app
from traject.types import Message, Status, ToolCall

from interop_servers import serve_app

pytestmark = pytest.mark.anyio


def _total(task: traject.types.Task) -> int:
    return sum(task.data["prices"][item] * qty for item, qty in task.data["order"])


# --- openenv's client against traject's server ---------------------------------------------


async def test_openenv_client_plays_a_traject_env_over_websocket() -> None:
    tasks = load_tasks("lookup", n=3, seed=0)
    app = create_openenv_app(lambda: make("lookup"), tasks, name="lookup")
    with serve_app(app) as url:
        async with GenericEnvClient(base_url=url) as client:
            first = await client.reset(seed=1)
            assert first.observation["task_id"] == tasks[1].id
            assert [t["function"]["name"] for t in first.observation["tools"]] == ["lookup", "submit"]
            assert first.observation["messages"][-1]["role"] == "user"
            item = tasks[1].data["order"][0][0]
            step = await client.step({"content": "", "tool_calls": [
                {"name": "lookup", "arguments": {"item": item}}]})
            assert not step.done
            assert step.observation["messages"][0]["content"] == str(tasks[1].data["prices"][item])
            state = await client.state()
            assert state["step_count"] == 1 and state["task_id"] == tasks[1].id
            last = await client.step({"content": "", "tool_calls": [
                {"name": "submit", "arguments": {"answer": _total(tasks[1])}}]})
            assert last.done and last.reward == 1.0
            assert last.observation["reward_info"]["success"] is True
            # A wrong answer on another task of the same session: reward 0, not a failure.
            await client.reset(task_id=tasks[2].id)
            last = await client.step({"content": "", "tool_calls": [
                {"name": "submit", "arguments": {"answer": _total(tasks[2]) + 1}}]})
            assert last.done and last.reward == 0.0 and not last.observation["reward_failed"]
        async with httpx.AsyncClient(base_url=url) as http:
            schema = (await http.get("/schema")).json()
            assert {"content", "tool_calls"} <= set(schema["action"]["properties"])
            assert (await http.get("/health")).json()["status"] == "healthy"
            reset = (await http.post("/reset", json={"seed": 0})).json()
            assert reset["observation"]["task_id"] == tasks[0].id and reset["done"] is False


async def test_traject_plays_a_traject_env_through_openenv() -> None:
    """traject's OpenEnv client against traject's OpenEnv server: tools and reward survive."""
    tasks = load_tasks("lookup", n=2, seed=3)
    app = create_openenv_app(lambda: make("lookup"), tasks, name="lookup")
    with serve_app(app) as url:
        env = traject.make(f"openenv:{url}")
        task = traject.types.Task(id="t", data={"reset": {"task_id": tasks[0].id}})
        policy = ScriptedPolicy([Message.assistant(tool_calls=[ToolCall(name="submit",
                                                                         arguments={"answer": _total(tasks[0])})])])
        traj = await AgentLoop(policy).run(env, task)
    assert traj.status is Status.COMPLETED
    assert [t.name for t in env.tools] == ["lookup", "submit"]
    assert traj.reward is not None and traj.reward.total == 1.0


# --- traject against a server built with openenv-core ---------------------------------------


class GuessAction(Action):
    guess: str


class GuessObservation(Observation):
    feedback: str = ""


class GuessEnvironment(Environment[GuessAction, GuessObservation, State]):
    """Guess a word; feedback says how many letters are right. Reward 1 on the word."""

    SUPPORTS_CONCURRENT_SESSIONS = True
    WORDS = ("apple", "lemon", "grape")

    def __init__(self) -> None:
        super().__init__()
        self._state = State()
        self.word = ""

    def reset(self, seed: int | None = None, episode_id: str | None = None, **kw: Any) -> GuessObservation:
        self.word = self.WORDS[(seed or 0) % len(self.WORDS)]
        self._state = State(episode_id=episode_id, step_count=0)
        return GuessObservation(feedback=f"Guess my {len(self.word)}-letter fruit.")

    def step(self, action: GuessAction, timeout_s: float | None = None, **kw: Any) -> GuessObservation:
        self._state.step_count += 1
        guess = action.guess.strip().lower()
        if guess == self.word:
            return GuessObservation(feedback="Right!", done=True, reward=1.0)
        right = sum(a == b for a, b in zip(guess, self.word))
        return GuessObservation(feedback=f"{right} letters in place.", reward=0.0,
                                done=self._state.step_count >= 3)

    @property
    def state(self) -> State:
        return self._state


async def test_traject_runs_an_openenv_environment_with_text_actions() -> None:
    app = create_fastapi_app(GuessEnvironment, GuessAction, GuessObservation, max_concurrent_envs=4)
    with serve_app(app) as url:
        tasks = traject.load_tasks(f"openenv:{url}", n=3)
        assert [t.data["reset"] for t in tasks] == [{"seed": 0}, {"seed": 1}, {"seed": 2}]

        def script(messages: list[Message], tools: list[Any]) -> Message:
            assert not tools  # a text action: no tools
            return Message.assistant("kiwi" if len(messages) < 2 else "lemon")

        results = []
        for task in tasks:
            results.append(await AgentLoop(ScriptedPolicy(script)).run(traject.make(f"openenv:{url}"), task))
    first = results[1]
    assert first.messages[0].text == "Guess my 5-letter fruit."
    assert first.messages[2].text == "0 letters in place."
    assert first.status is Status.COMPLETED and first.reward.total == 1.0
    assert results[0].reward.total == 0.0 and results[0].num_turns == 3  # the server ended it


class MoveAction(Action):
    dx: int = Field(ge=-1, le=1)
    dy: int = Field(ge=-1, le=1)


class GridObservation(Observation):
    x: int = 0
    y: int = 0


class GridEnvironment(Environment[MoveAction, GridObservation, State]):
    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self) -> None:
        super().__init__()
        self.pos = (0, 0)

    def reset(self, seed: int | None = None, episode_id: str | None = None, **kw: Any) -> GridObservation:
        self.pos = (0, 0)
        return GridObservation()

    def step(self, action: MoveAction, timeout_s: float | None = None, **kw: Any) -> GridObservation:
        self.pos = (self.pos[0] + action.dx, self.pos[1] + action.dy)
        done = self.pos == (1, 1)
        return GridObservation(x=self.pos[0], y=self.pos[1], done=done, reward=1.0 if done else 0.0)

    @property
    def state(self) -> State:
        return State()


async def test_a_non_text_action_space_is_refused_by_name_or_offered_as_a_tool() -> None:
    app = create_fastapi_app(GridEnvironment, MoveAction, GridObservation, max_concurrent_envs=2)
    with serve_app(app) as url:
        task = traject.types.Task(id="g", data={"reset": {}})
        with pytest.raises(UnsupportedActionSpace, match=r"not text \(fields dx: integer, dy: integer\)"):
            await traject.make(f"openenv:{url}").reset(task)
        env = traject.make(f"openenv:{url}", action_mode="tool")
        policy = ScriptedPolicy([
            Message.assistant(tool_calls=[ToolCall(name="act", arguments={"dx": 1, "dy": 5})]),
            Message.assistant(tool_calls=[ToolCall(name="act", arguments={"dx": 1, "dy": 1})]),
        ])
        traj = await AgentLoop(policy).run(env, task)
    assert [t.name for t in env.tools] == ["act"]
    assert traj.steps[0].tool_results[0].is_error  # dy=5 fails the server's schema: the model reads why
    assert traj.reward.total == 1.0 and traj.status is Status.COMPLETED


class CounterEnvironment(MCPEnvironment):
    """An OpenEnv MCP environment: tools over MCP; reaching exactly 3 ends it with reward 1."""

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self) -> None:
        mcp = FastMCP("counter")
        self.count = 0

        @mcp.tool()
        def increment(n: int) -> str:
            """Add n to the counter and return the new count."""
            self.count += n
            return str(self.count)

        super().__init__(mcp)

    def reset(self, seed: int | None = None, episode_id: str | None = None, **kw: Any) -> Observation:
        self.count = 0
        return Observation()

    async def _async_handle_call_tool(self, action: CallToolAction, timeout_s: float | None = None):
        obs = await super()._async_handle_call_tool(action, timeout_s=timeout_s)
        if self.count == 3:
            obs.done, obs.reward = True, 1.0
        return obs

    def _step_impl(self, action: Action, timeout_s: float | None = None, **kw: Any) -> Observation:
        raise ValueError("tools only")

    @property
    def state(self) -> State:
        return State()


async def test_an_openenv_mcp_environment_offers_its_tools() -> None:
    app = create_fastapi_app(CounterEnvironment, CallToolAction, CallToolObservation, max_concurrent_envs=2)
    with serve_app(app) as url:
        env = traject.make(f"openenv:{url}")
        task = traject.types.Task(id="c", prompt="Make the counter exactly 3.", data={"reset": {}})
        policy = ScriptedPolicy([
            Message.assistant(tool_calls=[ToolCall(name="increment", arguments={"n": "two"}),
                                          ToolCall(name="decrement", arguments={"n": 1})]),
            Message.assistant(tool_calls=[ToolCall(name="increment", arguments={"n": 2})]),
            Message.assistant(tool_calls=[ToolCall(name="increment", arguments={"n": 1})]),
        ])
        traj = await AgentLoop(policy).run(env, task)
        assert [t.name for t in env.tools] == ["increment"]
        assert env.tools[0].parameters["required"] == ["n"]
        first = traj.steps[0].tool_results
        assert first[0].is_error and "valid integer" in first[0].content
        assert first[1].error_kind == "unknown_tool"
        assert [r.content for s in traj.steps[1:] for r in s.tool_results] == ["2", "3"]
        assert traj.status is Status.COMPLETED and traj.reward.total == 1.0
        # A reply without tool calls ends the episode; its text is the final answer.
        traj = await AgentLoop(ScriptedPolicy([Message.assistant("I give up.")])).run(traject.make(f"openenv:{url}"),
                                                                                      task)
        assert traj.final_answer == "I give up." and traj.reward.total == 0.0


class BlobAction(Action):
    blob: Any


async def test_an_untyped_action_field_is_refused_even_as_a_tool() -> None:
    app = create_fastapi_app(GridEnvironment, BlobAction, GridObservation)
    with serve_app(app) as url:
        with pytest.raises(UnsupportedActionSpace, match=r"without a JSON type \(blob: untyped\)"):
            await traject.make(f"openenv:{url}", action_mode="tool").reset(traject.types.Task(id="b"))


def test_bad_openenv_name() -> None:
    with pytest.raises(ValueError, match="expected a server URL"):
        traject.make("openenv:localhost")



async def test_the_serve_env_command_serves_over_openenv(tmp_path) -> None:
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "traject.cli", "serve-env", "lookup", "--port", str(port),
                             "-n", "2", "--split", "test"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        async with httpx.AsyncClient(base_url=url) as http:
            while True:
                assert proc.poll() is None, proc.stdout.read().decode()
                try:
                    if (await http.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "serve-env did not start"
                await anyio.sleep(0.2)
        async with GenericEnvClient(base_url=url) as client:
            first = await client.reset(seed=0)
            assert first.observation["task_id"] == load_tasks("lookup", n=2, split="test")[0].id
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_env_with_a_bad_env_or_task_file_exits_2(tmp_path) -> None:
    from typer.testing import CliRunner

    from traject.cli import app

    result = CliRunner().invoke(app, ["serve-env", "no_such_env"])
    assert result.exit_code == 2 and "no env named 'no_such_env'" in result.output
    bad = tmp_path / "tasks.jsonl"
    bad.write_text("{not json\n")
    result = CliRunner().invoke(app, ["serve-env", "lookup", "--tasks", str(bad)])
    assert result.exit_code == 2 and "tasks.jsonl:1" in result.output
