"""``traject.make("verifiers:MODULE")``: a verifiers (0.4, ``verifiers.v1``) environment as a
traject env, with traject as its harness.

A verifiers environment is a taskset package: a ``Taskset`` subclass exported in ``__all__``
(its ``load()`` yields typed ``Task`` objects), optionally an ``Env`` subclass (its ``run()``
drives the agent turn by turn: a game engine, a scripted user), and ``Toolset`` tool servers.
The mapping:

* tasks: the taskset's tasks, each a traject Task whose prompt is the task's system prompt and
  prompt, and whose ``data["verifiers"]`` is the task's wire data (so the typed task is rebuilt
  exactly at reset and at scoring);
* tools: the task's and the taskset's ``Toolset`` servers, run in-process (their ``@vf.tool``
  methods behind mcp's ``MCPServer``, which also derives the schemas); a toolset's ``State``
  lives for the episode;
* turns: the verifiers ``Env.run()`` runs alongside the episode. Each ``interaction.turn()``
  it makes is answered by traject's policy: tool calls run as in any ToolEnv; a reply without
  tool calls ends the segment and goes to ``run()``, whose next user message is the next
  observation. When ``run()`` returns, the episode is over. ``SingleAgentEnv`` (a plain
  taskset) is one segment: the first reply without tool calls ends the episode. The task's
  ``@vf.stop`` hooks on the Trace are checked after each step (a true one ends the episode);
* reward: the task's ``@vf.reward`` functions (weighted), plus rewards ``run()`` recorded,
  computed by verifiers' own ``Task.score`` on a ``Trace`` built from the trajectory. A rubric
  that raises gives a ``failed`` RewardResult, never 0.

Not mapped (clear errors): envs with more than one agent seat (``user_sim``, judges played by
other models), tasks without a prompt (the user opens), and rewards or tools that need a
verifiers runtime (a container the harness would provision).

``export_taskset(name)`` goes the other way: a traject env's tasks and reward as a verifiers
``Taskset`` that verifiers' own harnesses can run.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from traject.environments.base import StepResult
from traject.environments.registry import EnvEntry
from traject.environments.tool_env import ToolEnv
from traject.rewards.base import Reward
from traject.tools.base import Tool, ToolOutput
from traject.tools.context import ToolContext
from traject.tools.toolset import Toolset
from traject.types import InfraError, Message, RewardResult, Task, Trajectory


def _vf() -> Any:
    try:
        import verifiers.v1 as vf
    except ImportError as exc:  # pragma: no cover - the interop extra is installed in CI
        raise ImportError("verifiers environments need the verifiers package: pip install 'traject[interop]'") from exc
    return vf


# --- loading a taskset ---------------------------------------------------------------------


@dataclass
class Source:
    """A loaded verifiers environment: its taskset, env class and configs."""

    module: str
    taskset: Any
    env_config: Any
    env_cls: type
    seat: str

    @property
    def task_cls(self) -> type:
        return type(self.taskset).task_type()

    def vf_task(self, task: Task) -> Any:
        raw = task.data.get("verifiers")
        if not isinstance(raw, dict):
            raise ValueError(f"task {task.id!r} is not a verifiers task (no data['verifiers'])")
        data = self.task_cls.data_type().model_validate(raw)
        return self.task_cls(data, self.taskset.config.task)


@functools.cache
def _load(module: str, taskset_json: str, env_id: str) -> Source:
    vf = _vf()
    from verifiers.v1.configs.agent import agent_config_fields
    from verifiers.v1.utils import loaders

    taskset_options = json.loads(taskset_json)
    try:
        config_cls = loaders.taskset_config_type(module)
    except (ModuleNotFoundError, AttributeError, TypeError) as exc:
        raise ValueError(f"verifiers:{module}: {exc}") from None
    try:
        taskset_config = config_cls.model_validate({**taskset_options, "id": module})
    except ValueError as exc:
        raise ValueError(f"verifiers:{module}: its taskset config does not validate (pass taskset={{...}}): "
                         f"{exc}") from None
    taskset = loaders.taskset_class(module)(taskset_config)
    env_cls = loaders.environment_class(module, env_id)
    env_config_cls = loaders.env_config_type(module, env_id)
    env_config = env_config_cls.model_validate({"id": env_id, "taskset": taskset_config.model_dump()})
    seats = list(agent_config_fields(env_config))
    if len(seats) != 1:
        raise ValueError(f"verifiers:{module}: its env {env_cls.__name__} has {len(seats)} agent seats "
                         f"({', '.join(seats)}); traject plays one seat, so multi-agent verifiers envs "
                         "(a user simulated by another model, judges) are not supported")
    del vf
    return Source(module=module, taskset=taskset, env_config=env_config, env_cls=env_cls, seat=seats[0])


def load_source(module: str, taskset: dict[str, Any] | None = None, env_id: str = "") -> Source:
    """``env_id`` pairs the taskset with a reusable verifiers env (its ``--env.id``)."""
    return _load(module, json.dumps(taskset or {}, sort_keys=True), env_id)


def _to_messages(prompt: Any) -> list[Message]:
    if prompt is None:
        return []
    if isinstance(prompt, str):
        return [Message.user(prompt)]
    out: list[Message] = []
    for m in prompt:
        role = getattr(m, "role", None)
        text = _text(getattr(m, "content", ""))
        if role == "system":
            out.append(Message.system(text))
        elif role == "user":
            out.append(Message.user(text))
        elif role == "assistant":
            out.append(Message.assistant(text))
        else:
            raise ValueError(f"a verifiers prompt message with role {role!r} is not supported in a task prompt")
    return out


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    from verifiers.v1.types import content_text

    return content_text(content)


def verifiers_tasks(module: str, *, n: int | None = None, seed: int | None = None, split: str | None = None,
                    taskset: dict[str, Any] | None = None, **_: Any) -> list[Task]:
    """The taskset's tasks as traject Tasks (``n`` first ones; shuffled by ``seed`` when given)."""
    source = load_source(module, taskset)
    view = source.taskset
    if seed is not None and view.bounded:
        view = view.shuffle(seed)
    if n is not None:
        view = view.take(n)
    elif not view.bounded:
        raise ValueError(f"verifiers:{module}: the taskset is infinite; ask for a number of tasks (n)")
    tasks = []
    for vt in view:
        d = vt.data
        messages = [Message.system(d.system_prompt)] if d.system_prompt else []
        messages += _to_messages(d.prompt)
        tasks.append(Task(id=str(d.id or d.name or f"{module}-{d.idx}"), prompt=messages,
                          data={"verifiers": d.model_dump(mode="json")},
                          metadata={"verifiers_key": vt.key, "verifiers_idx": d.idx}))
    return tasks


# --- tools ---------------------------------------------------------------------------------


class VfTool(Tool):
    def __init__(self, server: Any, name: str, description: str, parameters: dict[str, Any]) -> None:
        self.server = server
        self.name = name
        self.description = description
        self.parameters = parameters

    async def __call__(self, ctx: ToolContext, arguments: dict[str, Any]) -> ToolOutput:
        from traject.tools.mcp import _content_parts

        try:
            result = await self.server.call_tool(self.name, arguments)
        except Exception as exc:  # noqa: BLE001 - a tool's failure is an observation
            return ToolOutput(content=f"Error: {exc}", is_error=True)
        parts = _content_parts(getattr(result, "content", []) or [])
        if not parts and getattr(result, "structured_content", None) is not None:
            return ToolOutput(content=json.dumps(result.structured_content), is_error=bool(result.is_error))
        text = "\n".join(getattr(p, "text", "") for p in parts)
        return ToolOutput(content=text, is_error=bool(getattr(result, "is_error", False)))


class VfToolsets(Toolset):
    """One episode's verifiers tool servers, in-process, their tools behind one MCPServer."""

    def __init__(self, servers: list[Any], vf_task: Any) -> None:
        self.servers = servers
        self.vf_task = vf_task
        self._tools: list[Tool] = []

    async def setup(self, ctx: ToolContext) -> None:
        for server in self.servers:
            await server.setup()
            await server.setup_task(self.vf_task)
        _, self._tools = _register_tools(self.servers, self.vf_task)

    async def teardown(self, ctx: ToolContext) -> None:
        for server in reversed(self.servers):
            await server._exit_stack.aclose()

    def tools(self) -> list[Tool]:
        return list(self._tools)


def _register_tools(servers: list[Any], vf_task: Any) -> tuple[Any, list[Tool]]:
    """The servers' ``@vf.tool`` methods on one in-process MCPServer (named as verifiers names
    them: ``<server>_<tool>``, or bare when ``TOOL_PREFIX`` is None), each server with one State
    for the episode."""
    from mcp.server.mcpserver import MCPServer
    from verifiers.v1.mcp.server import _call_state
    from verifiers.v1.utils.decorators import discover_decorated

    mcp = MCPServer("traject")
    for server in servers:
        state = server._state_cls()
        prefix = f"{server.server_name}_" if server.server_name else ""
        for fn in discover_decorated(server, "tool"):
            mcp.add_tool(_with_episode_state(fn, state, _call_state),
                         name=prefix + (getattr(fn, "tool_name", None) or fn.__name__),
                         description=(fn.__doc__ or "").strip() or None)
    infos = mcp._tool_manager.list_tools()  # the sync form of MCPServer.list_tools
    return mcp, [VfTool(mcp, t.name, t.description or "", dict(t.parameters or {})) for t in infos]


def _trace_stops(vf_task: Any) -> list[Any]:
    from verifiers.v1.session import hook_boundary
    from verifiers.v1.trace import Trace

    stops = []
    for fn in vf_task.hooks("stop"):
        if hook_boundary(fn, allow_trace=True) is not Trace:
            raise ValueError(f"@vf.stop {fn.__name__} takes a model Request or Response: traject runs the "
                             "task's Trace stops only (its policy is not behind verifiers' interception)")
        stops.append(fn)
    return stops


def _with_episode_state(fn: Any, state: Any, var: Any) -> Any:
    """Run a ``@vf.tool`` with the episode's State (verifiers syncs it over a channel when the
    server is a separate process; in-process one object lives for the episode)."""

    @functools.wraps(fn)
    async def call(*args: Any, **kwargs: Any) -> Any:
        token = var.set(state)
        try:
            result = fn(*args, **kwargs)
            return await result if inspect.isawaitable(result) else result
        finally:
            var.reset(token)

    call.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
    return call


# --- the episode: verifiers' Env.run() drives, traject's policy answers ----------------------


class _Seat:
    """What ``Env.run()`` sees as its one agent: turns are answered by the traject episode."""

    def __init__(self, episode: VerifiersEnv, name: str) -> None:
        self.episode = episode
        self.name = name
        self.trainable = True

    @contextlib.asynccontextmanager
    async def interaction(self, task: Any) -> AsyncIterator[_Interaction]:
        yield _Interaction(self.episode)

    async def run(self, task: Any, **_: Any) -> Any:
        async with self.interaction(task) as interaction:
            await interaction.turn()
        return interaction.trace


class _Interaction:
    def __init__(self, episode: VerifiersEnv) -> None:
        self.episode = episode

    @property
    def trace(self) -> Any:
        return self.episode.trace

    async def turn(self, message: Any = None) -> Any:
        from verifiers.v1.agent import Segment
        from verifiers.v1.types import AssistantMessage

        if message is None:
            messages: list[Message] = []
        elif isinstance(message, str):
            messages = [Message.user(message)]
        else:
            messages = _to_messages(message)
        if self.episode._ended:
            return Segment(messages=[], terminated=True)
        await self.episode._to_env.put(("turn", messages))
        action = await self.episode._to_driver.get()
        if action is None:  # a @vf.stop fired: the exchange is over
            self.episode._ended = True
            return Segment(messages=[], terminated=True)
        return Segment(messages=[AssistantMessage(content=action.text)])


class VerifiersEnv(ToolEnv):
    def __init__(self, module: str, *, taskset: dict[str, Any] | None = None, env_id: str = "",
                 max_turns: int = 10, tool_timeout_s: float = 60.0) -> None:
        self.source = load_source(module, taskset, env_id)
        super().__init__([], name=f"verifiers:{module}", max_turns=max_turns, tool_timeout_s=tool_timeout_s,
                         reward=VerifiersReward(self.source))
        self.spec.tools = [t.schema for t in _register_tools(self._servers(), None)[1]]
        self._vf_env: Any = None
        self._driver: asyncio.Task[None] | None = None
        self._to_env: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._to_driver: asyncio.Queue[Message | None] = asyncio.Queue()
        self._ended = False
        self.trace: Any = None
        self._vf_task: Any = None
        self._stops: list[Any] = []

    async def reset(self, task: Task) -> list[Message]:
        await self._stop_driver()
        vf_task = self.source.vf_task(task)
        if vf_task.data.prompt is None:
            raise ValueError(f"verifiers:{self.source.module}: task {task.id!r} has no prompt (the user opens); "
                             "user-simulated verifiers tasks are not supported")
        servers = self._servers()
        self._tool_specs = [VfToolsets(servers, vf_task)] if servers else []
        messages = await super().reset(task)
        self.trace = new_trace(vf_task, messages)
        self._vf_task = vf_task
        self._stops = _trace_stops(vf_task)
        if self._vf_env is None:
            # The env's own harnesses are loaded but never run: traject's policy plays the seat.
            self._vf_env = self.source.env_cls(self.source.env_config)
        self._to_env, self._to_driver = asyncio.Queue(), asyncio.Queue()
        self._ended = False
        self._driver = asyncio.get_running_loop().create_task(self._drive(vf_task))
        kind, payload = await self._to_env.get()
        if kind == "error":
            raise InfraError(f"verifiers env {self.source.env_cls.__name__}.run() failed at the start: "
                             f"{type(payload).__name__}: {payload}") from payload
        if kind == "end":
            raise InfraError(f"verifiers env {self.source.env_cls.__name__}.run() ended without a turn")
        self.messages += payload
        self._sync_trace()
        return messages + payload

    def _sync_trace(self) -> None:
        """The live Trace ``run()`` and ``@vf.stop`` hooks see follows the conversation."""
        self.trace.nodes = new_trace(self._vf_task, self.messages).nodes

    async def _stopped(self, result: StepResult) -> StepResult:
        """Verifiers' ``@vf.stop`` hooks on the Trace, checked before the next model call; at
        the episode's end, ``run()`` is let finish."""
        from verifiers.v1.session import call_hook
        from verifiers.v1.trace import Trace

        self._sync_trace()
        for stop in self._stops if not result.done else []:
            fired = await call_hook(stop, {Trace: self.trace})
            if not isinstance(fired, bool):
                raise TypeError(f"@vf.stop {stop.__name__} must return bool, got {type(fired).__name__}")
            if fired:
                result.terminated, result.truncated = True, False
                result.info["verifiers"] = {"stop": stop.__name__}
                break
        if result.done and self._driver is not None:
            # A stop or the turn budget ended the exchange: run() sees a terminated segment, as
            # in verifiers, and what it records on the way out is kept.
            result.info.setdefault("verifiers", {})["env_rewards"] = await self._end_run()
        return result

    async def _end_run(self) -> dict[str, Any]:
        """Tell ``run()`` the exchange is over (a terminated Segment) and let it finish, as
        verifiers does when a stop fires; what it recorded is returned."""
        while self._driver is not None:
            await self._to_driver.put(None)
            kind, payload = await self._to_env.get()
            if kind == "end":
                self._driver = None
                return payload
            if kind == "error":
                self._driver = None
                raise InfraError(f"verifiers env {self.source.env_cls.__name__}.run() failed: "
                                 f"{type(payload).__name__}: {payload}") from payload
        return {}

    def _servers(self) -> list[Any]:
        return [*self.source.task_cls.toolsets(self.source.taskset.config.task),
                *type(self.source.taskset).toolsets(self.source.taskset.config)]

    async def _drive(self, vf_task: Any) -> None:
        vf = _vf()
        agents = vf.Agents(self.source.env_config, lambda name, spec: _Seat(self, name))
        try:
            await self._vf_env.setup(agents)
            await self._vf_env.run(vf_task, agents)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the episode
            await self._to_env.put(("error", exc))
            return
        recorded = {k: [r.score, r.weight] for k, r in self.trace.rewards.items() if r is not None}
        await self._to_env.put(("end", recorded))

    async def step(self, action: Message) -> StepResult:
        if action.tool_calls or self._driver is None:
            return await self._stopped(await super().step(action))
        self._turns += 1
        self.messages.append(action)
        await self._to_driver.put(action)
        kind, payload = await self._to_env.get()
        if kind == "error":
            raise InfraError(f"verifiers env {self.source.env_cls.__name__}.run() failed: "
                             f"{type(payload).__name__}: {payload}") from payload
        if kind == "end":
            self._driver = None
            return StepResult(terminated=True, final_answer=action.text,
                              info={"verifiers": {"env_rewards": payload}})
        self.messages += payload
        return await self._stopped(StepResult(observations=payload, truncated=self._turns >= self.max_turns))

    async def _stop_driver(self) -> None:
        driver, self._driver = self._driver, None
        if driver is not None and not driver.done():
            driver.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await driver

    async def aclose(self) -> None:
        await self._stop_driver()
        await super().aclose()


# --- the rubric ----------------------------------------------------------------------------


def _vf_message(m: Message) -> Any:
    from verifiers.v1 import types as t

    if m.role == "system":
        return t.SystemMessage(content=m.text)
    if m.role == "user":
        return t.UserMessage(content=m.text)
    if m.role == "tool":
        return t.ToolMessage(tool_call_id=m.tool_call_id or "", content=m.text, name=m.name)
    calls = [t.ToolCall(id=c.id, name=c.name, arguments=json.dumps(c.arguments)) for c in m.tool_calls]
    return t.AssistantMessage(content=m.text, reasoning_content=m.reasoning, tool_calls=calls or None)


def new_trace(vf_task: Any, messages: list[Message]) -> Any:
    vf = _vf()
    from verifiers.v1.graph import MessageNode

    trace = vf.Trace(task=vf.TraceTask(type=type(vf_task).__name__, data=vf_task.data, key=vf_task.key,
                                       hash=vf_task.hash),
                     agent=vf.AgentInfo(config=vf.AgentConfig()))
    trace.nodes = [MessageNode(parent=i - 1 if i else None, message=_vf_message(m), sampled=m.role == "assistant")
                   for i, m in enumerate(messages)]
    return trace


class VerifiersReward(Reward):
    """The verifiers task's rubric: its weighted ``@vf.reward`` functions and judges, run by
    verifiers' ``Task.score`` on the episode as a Trace, plus what the env's ``run()`` recorded."""

    name = "verifiers"

    def __init__(self, source: Source) -> None:
        self.source = source

    async def score(self, traj: Trajectory, task: Task) -> RewardResult:
        try:
            vf_task = self.source.vf_task(task)
            needs = _runtime_signals(vf_task)
            if needs:
                return RewardResult(failed=True, error=f"verifiers rewards {', '.join(needs)} need a verifiers runtime "
                                    "(a box its harness provisions), which traject does not provide")
            trace = new_trace(vf_task, traj.messages)
            for step in traj.steps:
                for key, (value, weight) in ((step.info.get("verifiers") or {}).get("env_rewards") or {}).items():
                    trace.record_reward(key, value, weight)
            await vf_task.score(trace)
        except Exception as exc:  # noqa: BLE001 - a rubric that raises is a failed reward, never 0
            cause = exc.__cause__ or exc
            return RewardResult(failed=True, error=f"verifiers rubric failed: {type(cause).__name__}: {cause}")
        if not trace.rewards:
            return RewardResult(failed=True, error="the verifiers task defines no reward (no @vf.reward, judge, "
                                "or reward recorded by its env)")
        missing = [k for k, r in trace.rewards.items() if r is None]
        if missing:
            return RewardResult(failed=True, error=f"verifiers rewards gave no value: {', '.join(missing)}")
        components = {k: r.value for k, r in trace.rewards.items()}
        return RewardResult(total=trace.reward, components=components,
                            info={"metrics": {k: v for k, v in trace.metrics.items() if v is not None}})


def _runtime_signals(vf_task: Any) -> list[str]:
    """Rewards and judges that require a verifiers ``runtime`` argument (Task.score would skip them)."""
    def required(fn: Any) -> bool:
        param = inspect.signature(fn).parameters.get("runtime")
        return param is not None and param.default is inspect.Parameter.empty

    names = [fn.__name__ for fn in vf_task.hooks("reward") if required(fn)]
    return names + [j.reward_name for j in vf_task.plugged_judges() if required(j.score)]


def scheme_entry(module: str) -> EnvEntry:
    if not module:
        raise ValueError("verifiers:MODULE needs the taskset module, e.g. verifiers:my_taskset")
    return EnvEntry(name=f"verifiers:{module}", make=lambda **config: VerifiersEnv(module, **config),
                    tasks=lambda **options: verifiers_tasks(module, **options),
                    description=f"the verifiers taskset {module}")
