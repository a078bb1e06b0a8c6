"""A traject env as a ``gymnasium.Env`` whose observations and actions are text.

* ``reset(seed=...)`` picks a task (with the env's seeded ``np_random``, or ``options={"task_id":
  ...}``) and returns the opening conversation as text: the system prompt, the tools rendered in
  the configured tool-call format (``tool_format``, default ``hermes``), and the user's prompt.
* ``step(text)``: the text is what the model wrote; the format's parser turns it into an
  assistant message with tool calls (a botched call is an error observation, as in every
  traject env). The observation is the env's answer as text: tool results rendered by the
  format, user messages as they are.
* reward: the step's reward; on the last step plus the env's outcome reward over the episode
  (``info["reward"]`` holds the RewardResult). A reward that could not be computed is NaN,
  never 0, with ``info["reward_failed"]``.

The traject env is async; the gymnasium env drives it from a private event loop in a worker
thread (an anyio blocking portal), so ``step`` may be called from plain synchronous code.
"""

from __future__ import annotations

import math
import re
import string
from typing import Any

import gymnasium
from gymnasium import spaces

from traject.agents.parsers import get_format
from traject.environments.base import Env
from traject.types import Message, Step, Task, Trajectory

_SAMPLE_CHARSET = string.ascii_letters + string.digits + string.punctuation + " \n"


class UnicodeText(spaces.Text):
    """Any string up to ``max_length`` characters (gymnasium's Text only admits its charset).
    ``sample()`` draws from printable ASCII."""

    def __init__(self, max_length: int, *, min_length: int = 0, seed: int | None = None) -> None:
        super().__init__(max_length, min_length=min_length, charset=_SAMPLE_CHARSET, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"UnicodeText({self.min_length}, {self.max_length})"


class UnsupportedObservation(ValueError):
    """The env answered with something a text observation cannot carry (an image)."""


def render_message(message: Message, fmt: Any) -> str:
    if message.images:
        raise UnsupportedObservation(
            f"a {message.role} message holds {len(message.images)} image(s): traject.gym's observations are "
            "text only, so envs that show images (gui, miniwob) are not supported")
    if message.role == "tool":
        return fmt.render_result(message.name or "", message.text)
    return f"[{message.role}]\n{message.text}"


class TrajectGymEnv(gymnasium.Env[str, str]):
    metadata = {"render_modes": []}

    def __init__(self, env: Env, tasks: list[Task], *, tool_format: str = "hermes", max_length: int = 1 << 20) -> None:
        if not tasks:
            raise ValueError(f"env {env.spec.name!r} has no tasks: pass tasks=[...]")
        from anyio.from_thread import start_blocking_portal

        self.env = env
        self.tasks = tasks
        self.format = get_format(tool_format)
        self.observation_space = UnicodeText(max_length)
        self.action_space = UnicodeText(max_length)
        self._portal_cm = start_blocking_portal()
        self._portal = self._portal_cm.__enter__()
        self._task: Task | None = None
        self._messages: list[Message] = []
        self._steps: list[Step] = []
        self._done = True

    def _render_opening(self, messages: list[Message]) -> str:
        parts: list[str] = []
        for m in messages:
            if m.role == "system" and self.env.tools:
                parts.append(f"[system]\n{m.text}\n\n{self.format.render_tools(self.env.tools)}")
            else:
                parts.append(render_message(m, self.format))
        if self.env.tools and not any(m.role == "system" for m in messages):
            parts.insert(0, f"[system]\n{self.format.render_tools(self.env.tools)}")
        return "\n\n".join(parts)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        if "task_id" in options:
            matches = [t for t in self.tasks if t.id == options["task_id"]]
            if not matches:
                raise ValueError(f"no task {options['task_id']!r} among this env's {len(self.tasks)} tasks")
            task = matches[0]
        else:
            task = self.tasks[int(self.np_random.integers(len(self.tasks)))]
        self._task = task
        first = self._portal.call(self.env.reset, task)
        self._messages = list(first)
        self._steps = []
        self._done = False
        return self._render_opening(first), {"task_id": task.id, "tools": [t.to_openai() for t in self.env.tools]}

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._done or self._task is None:
            raise RuntimeError("step() before reset(), or after the episode ended: call reset()")
        parsed = self.format.parse(action)
        message = Message.assistant(parsed.content, tool_calls=parsed.tool_calls)
        result = self._portal.call(self.env.step, message)
        self._messages += [message, *result.observations]
        self._steps.append(Step(index=len(self._steps), action=message, observations=result.observations,
                                tool_results=result.tool_results, reward=result.reward, done=result.done,
                                format_errors=result.format_errors, info=result.info))
        reward = float(result.reward)
        info: dict[str, Any] = {"format_errors": result.format_errors,
                                "tool_calls": [c.model_dump(mode="json") for c in parsed.tool_calls]}
        if result.done:
            self._done = True
            if result.final_answer is not None:
                info["final_answer"] = result.final_answer
            if self.env.reward is not None:
                from traject.agents.loop import score_safely

                traj = Trajectory(task_id=self._task.id, env=self.env.spec.name, messages=self._messages,
                                  steps=self._steps, final_answer=result.final_answer)
                outcome = self._portal.call(score_safely, self.env.reward, traj, self._task)
                info["reward"] = outcome.model_dump(mode="json")
                info["reward_failed"] = outcome.failed
                reward = math.nan if outcome.failed else reward + outcome.total
            self._portal.call(self.env.aclose)
        text = "\n\n".join(render_message(m, self.format) for m in result.observations)
        return text, reward, result.terminated, result.truncated, info

    def close(self) -> None:
        if self._portal_cm is None:
            return
        cm, self._portal_cm = self._portal_cm, None
        try:
            self._portal.call(self.env.aclose)
        finally:
            cm.__exit__(None, None, None)


def make(name: str, *, tasks: list[Task] | None = None, task_options: dict[str, Any] | None = None,
         tool_format: str = "hermes", max_length: int = 1 << 20, **env_config: Any) -> TrajectGymEnv:
    """``traject.gym.make("lookup")``: the registered env ``name`` as a text gymnasium.Env."""
    from traject.environments.registry import load_tasks
    from traject.environments.registry import make as make_env

    env = make_env(name, **env_config)
    return TrajectGymEnv(env, tasks if tasks is not None else load_tasks(name, **(task_options or {})),
                         tool_format=tool_format, max_length=max_length)


def register(name: str, *, id: str | None = None, **kwargs: Any) -> str:
    """Register the traject env ``name`` with gymnasium's registry, so that ``gymnasium.make(id)``
    builds it (with ``kwargs`` for :func:`make`); returns the id (default ``traject/NAME-v0``)."""
    env_id = id or f"traject/{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}-v0"
    gymnasium.register(id=env_id, entry_point="traject.interop.gym_env:make", kwargs={"name": name, **kwargs},
                       nondeterministic=False)
    return env_id
