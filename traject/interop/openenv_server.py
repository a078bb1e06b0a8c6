"""``traject serve-env ENV``: any traject env as an OpenEnv server.

The server is openenv-core's own (``create_fastapi_app``), so the routes and the wire format
are the spec's: ``POST /reset``, ``POST /step``, ``GET /state``, ``GET /schema``,
``GET /health`` and the ``/ws`` WebSocket session that OpenEnv clients use. As in OpenEnv,
the HTTP ``/reset`` and ``/step`` routes are stateless (a fresh env per request); an episode
of several steps runs over ``/ws``, one traject env per WebSocket session.

Mapping:

* action: ``TrajectAction(content, tool_calls)``, the assistant message;
* observation: ``TrajectObservation(messages, tools, task_id)``: the messages the env
  answered with (at reset: the first messages), and the tools offered;
* reset picks the task: ``task`` (a Task object), else ``task_id``, else ``seed`` (index
  modulo the number of tasks), else the next task in order;
* reward: each step's own reward; on the last step, the env's outcome reward (its ``Reward``
  over the episode) when it has one, with the step's own in ``step_reward`` and the whole
  RewardResult in ``reward_info``. A reward that could not be computed is ``None`` with
  ``reward_failed`` set, never 0.

Requires the ``interop`` extra (openenv-core).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any

from pydantic import Field

from traject.environments.base import Env
from traject.types import Message, Step, Task, ToolCall, Trajectory

log = logging.getLogger(__name__)


def _require_openenv() -> Any:
    try:
        import openenv.core.env_server as server
    except ImportError as exc:  # pragma: no cover - the interop extra is installed in CI
        raise ImportError("the OpenEnv bridge needs openenv-core: pip install 'traject[interop]'") from exc
    return server


_server = _require_openenv()
from openenv.core.env_server.interfaces import Environment  # noqa: E402
from openenv.core.env_server.types import Action, EnvironmentMetadata, Observation, State  # noqa: E402


class TrajectAction(Action):
    """The assistant's message: its text and the tool calls it makes."""

    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)


class TrajectObservation(Observation):
    """What the env answered: new messages (tool results, a user's reply) and the tools offered."""

    messages: list[Message] = Field(default_factory=list)
    tools: list[dict[str, Any]] = Field(default_factory=list, description="OpenAI function-calling schemas")
    task_id: str | None = None
    terminated: bool = False
    truncated: bool = False
    final_answer: str | None = None
    step_reward: float = 0.0
    reward_failed: bool = False
    reward_info: dict[str, Any] = Field(default_factory=dict, description="the outcome RewardResult, on the last step")


class TrajectState(State):
    env: str = ""
    task_id: str | None = None
    terminated: bool = False
    truncated: bool = False


class TrajectEnvironment(Environment[TrajectAction, TrajectObservation, TrajectState]):
    """One traject env behind OpenEnv's Environment interface (one per WebSocket session)."""

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self, make_env: Callable[[], Env], tasks: list[Task], *, name: str,
                 order: itertools.count | None = None) -> None:
        super().__init__()
        if not tasks:
            raise ValueError(f"env {name!r} has no tasks to serve")
        self._make_env = make_env
        self._tasks = tasks
        self._by_id = {t.id: t for t in tasks}
        self._name = name
        self._order = order if order is not None else itertools.count()
        self._env: Env | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: Task | None = None
        self._messages: list[Message] = []
        self._steps: list[Step] = []
        self._state = TrajectState(env=name)

    def _pick(self, seed: int | None, task_id: str | None, task: dict[str, Any] | None) -> Task:
        if task is not None:
            return Task.model_validate(task)
        if task_id is not None:
            try:
                return self._by_id[task_id]
            except KeyError:
                raise ValueError(f"env {self._name!r} has no task {task_id!r}") from None
        index = seed if seed is not None else next(self._order)
        return self._tasks[index % len(self._tasks)]

    async def reset_async(self, seed: int | None = None, episode_id: str | None = None,
                          task_id: str | None = None, task: dict[str, Any] | None = None,
                          **kwargs: Any) -> TrajectObservation:
        await self._close_env()
        self._loop = asyncio.get_running_loop()
        self._task = self._pick(seed, task_id, task)
        self._env = self._make_env()
        first = await self._env.reset(self._task)
        self._messages = list(first)
        self._steps = []
        self._state = TrajectState(env=self._name, task_id=self._task.id, episode_id=episode_id, step_count=0)
        return TrajectObservation(messages=first, tools=[t.to_openai() for t in self._env.tools],
                                  task_id=self._task.id)

    async def step_async(self, action: TrajectAction, timeout_s: float | None = None,
                         **kwargs: Any) -> TrajectObservation:
        if self._env is None or self._task is None:
            raise RuntimeError("step before reset (or after the episode ended): send a reset first")
        message = Message.assistant(action.content, tool_calls=list(action.tool_calls))
        result = await self._env.step(message)
        self._messages += [message, *result.observations]
        self._steps.append(Step(index=len(self._steps), action=message, observations=result.observations,
                                tool_results=result.tool_results, reward=result.reward, done=result.done,
                                format_errors=result.format_errors, info=result.info))
        self._state.step_count += 1
        self._state.terminated, self._state.truncated = result.terminated, result.truncated
        obs = TrajectObservation(messages=result.observations, done=result.done, reward=result.reward,
                                 task_id=self._task.id, terminated=result.terminated, truncated=result.truncated,
                                 final_answer=result.final_answer, step_reward=result.reward)
        if result.done:
            env, self._env = self._env, None
            if env.reward is not None:
                traj = Trajectory(task_id=self._task.id, env=self._name, messages=self._messages,
                                  steps=self._steps, final_answer=result.final_answer)
                from traject.agents.loop import score_safely

                outcome = await score_safely(env.reward, traj, self._task)
                obs.reward_info = outcome.model_dump(mode="json")
                obs.reward = None if outcome.failed else outcome.total
                obs.reward_failed = outcome.failed
            await env.aclose()
        return obs

    def reset(self, seed: int | None = None, episode_id: str | None = None, **kwargs: Any) -> TrajectObservation:
        return asyncio.run(self.reset_async(seed=seed, episode_id=episode_id, **kwargs))

    def step(self, action: TrajectAction, timeout_s: float | None = None, **kwargs: Any) -> TrajectObservation:
        return asyncio.run(self.step_async(action, timeout_s=timeout_s))

    @property
    def state(self) -> TrajectState:
        return self._state

    def get_metadata(self) -> EnvironmentMetadata:
        return EnvironmentMetadata(name=self._name, description=f"traject env {self._name!r} over OpenEnv",
                                   version="traject")

    async def _close_env(self) -> None:
        env, self._env = self._env, None
        if env is not None:
            await env.aclose()

    def close(self) -> None:
        # OpenEnv calls close() synchronously, from its event loop or from a worker thread.
        if self._env is None or self._loop is None or self._loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._loop.create_task(self._close_env())
        else:
            asyncio.run_coroutine_threadsafe(self._close_env(), self._loop).result(timeout=60)


def create_openenv_app(make_env: Callable[[], Env], tasks: list[Task], *, name: str,
                       max_sessions: int = 8) -> Any:
    """A FastAPI app serving ``make_env``'s envs on ``tasks`` with openenv-core's server."""
    order = itertools.count()
    return _server.create_fastapi_app(
        lambda: TrajectEnvironment(make_env, tasks, name=name, order=order),
        TrajectAction, TrajectObservation, max_concurrent_envs=max_sessions)


def serve_env(name: str, *, env_config: dict[str, Any] | None = None, tasks: list[Task] | None = None,
              task_options: dict[str, Any] | None = None, host: str = "127.0.0.1", port: int = 8000,
              max_sessions: int = 8) -> None:
    """Serve the registered env ``name`` until interrupted (``traject serve-env``)."""
    import uvicorn

    from traject.environments.registry import load_tasks, make

    config = dict(env_config or {})
    make(name, **config)  # fail here, before serving, on a bad env name or config
    served = tasks if tasks is not None else load_tasks(name, **(task_options or {}))
    app = create_openenv_app(lambda: make(name, **config), served, name=name, max_sessions=max_sessions)
    log.info("serving env %r (%d tasks) as OpenEnv on http://%s:%d", name, len(served), host, port)
    uvicorn.run(app, host=host, port=port, log_level="warning")
