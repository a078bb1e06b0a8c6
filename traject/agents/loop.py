"""AgentLoop: one policy, one env, one task, one Trajectory.

An episode can also be run a few steps at a time (``AgentLoop.start`` gives an ``Episode``):
the Rollouts engine uses that to pause long episodes at a step boundary and continue them in
a later batch (partial rollouts).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import nullcontext

import anyio
from anyio.abc import TaskGroup

from traject.agents.policy import ContextExhausted, Policy
from traject.agents.tokens import build_token_views
from traject.environments.base import Env
from traject.episode import reset_service_group, set_service_group
from traject.rewards.base import Reward
from traject.types import InfraError, RewardResult, Status, Step, Task, Timings, Trajectory, Usage

log = logging.getLogger(__name__)


class AgentLoop:
    """Run episodes of ``policy`` in an env.

    The loop never lets a failure escape as an exception: an infra failure (policy endpoint,
    sandbox, user simulator, env machinery) marks the trajectory ``infra_error``; an episode
    over ``episode_timeout_s`` is marked ``timeout``; either way the env is closed, shielded
    from cancellation. Only cancellation itself propagates.
    """

    def __init__(self, policy: Policy, *, reward: Reward | None = None,
                 episode_timeout_s: float | None = None, max_steps: int = 1000) -> None:
        self.policy = policy
        self.reward = reward
        self.episode_timeout_s = episode_timeout_s
        self.max_steps = max_steps

    def start(self, env: Env, task: Task, *, sample_index: int = 0, seed: int | None = None,
              services: TaskGroup | None = None) -> Episode:
        """An episode to run in pieces. ``services`` is the task group where its toolsets may
        start long-lived helpers (``traject.episode.service_group()``); it must outlive the
        episode, pauses included."""
        return Episode(self, env, task, sample_index=sample_index, seed=seed, services=services)

    async def run(self, env: Env, task: Task, *, sample_index: int = 0, seed: int | None = None) -> Trajectory:
        async with anyio.create_task_group() as services:
            episode = self.start(env, task, sample_index=sample_index, seed=seed, services=services)
            try:
                await episode.advance()
                traj = await episode.finish()
            finally:
                # Whatever a toolset left running is stopped with the episode.
                services.cancel_scope.cancel()
        return traj


class Episode:
    """One episode in progress. ``advance`` runs steps (all, or up to a budget); ``finish``
    closes the env and scores the trajectory. Time spent paused between ``advance`` calls
    counts neither in the timings nor against the episode timeout."""

    def __init__(self, loop: AgentLoop, env: Env, task: Task, *, sample_index: int = 0,
                 seed: int | None = None, services: TaskGroup | None = None) -> None:
        self.loop = loop
        self.services = services
        self.env = env
        self.task = task
        self.traj = Trajectory(task_id=task.id, sample_index=sample_index, env=env.spec.name, seed=seed)
        # Plain numbers while the episode runs (pydantic attribute writes cost microseconds on
        # a path taken several times per step); Usage and Timings are built once, at the end.
        self.model_s = self.tools_s = self.user_s = 0.0
        self.prompt_tokens = self.completion_tokens = self.model_calls = 0
        self.tool_calls = self.format_errors = 0
        self.done = False
        self.pauses = 0
        self._started = False
        self._closed = False
        self._active_s = 0.0

    @property
    def sample_index(self) -> int:
        return self.traj.sample_index

    async def advance(self, max_steps: int | None = None, *,
                      should_pause: Callable[[], bool] | None = None) -> bool:
        """Run the episode on; stop after ``max_steps`` steps, or at a step boundary where
        ``should_pause()`` is true. Returns True once the episode is over."""
        if self.done:
            return True
        loop, traj = self.loop, self.traj
        t0 = time.perf_counter()
        timeout = None
        if loop.episode_timeout_s is not None:
            timeout = max(0.0, loop.episode_timeout_s - self._active_s)
        service_token = set_service_group(self.services)
        try:
            with anyio.fail_after(timeout) if timeout is not None else nullcontext():
                self.done = await self._steps(max_steps, should_pause)
        except TimeoutError:
            traj.status = Status.TIMEOUT
            traj.error = f"episode exceeded {loop.episode_timeout_s:g} s"
            self.done = True
        except InfraError as exc:
            traj.status = Status.INFRA_ERROR
            traj.error = f"{type(exc).__name__}: {exc}"
            self.done = True
        except anyio.get_cancelled_exc_class():
            traj.status = Status.CANCELLED
            self.done = True
            await self._close()
            raise
        except Exception as exc:  # noqa: BLE001 - the machinery failed, not the agent
            # One line per episode (a traceback each would bury the run's output); --debug logs show it.
            log.warning("episode of task %s failed: %s: %s", self.task.id, type(exc).__name__, exc,
                        exc_info=log.isEnabledFor(logging.DEBUG))
            traj.status = Status.INFRA_ERROR
            traj.error = f"{type(exc).__name__}: {exc}"
            self.done = True
        finally:
            reset_service_group(service_token)
            self._active_s += time.perf_counter() - t0
        if not self.done:
            self.pauses += 1
        return self.done

    async def _steps(self, max_steps: int | None, should_pause: Callable[[], bool] | None) -> bool:
        loop, env, traj = self.loop, self.env, self.traj
        if not self._started:
            self._started = True
            traj.messages = list(await env.reset(self.task))
        policy = loop.policy
        budget = max_steps if max_steps is not None else loop.max_steps
        for _ in range(budget):
            index = len(traj.steps)
            if index >= loop.max_steps:
                traj.status = Status.MAX_TURNS
                return True
            t0 = time.perf_counter()
            try:
                out = await policy.act(list(traj.messages), env.tools)
            except ContextExhausted as exc:
                traj.status = Status.MAX_TURNS
                traj.info["truncated_by"] = f"context: {exc}"
                return True
            model_s = time.perf_counter() - t0
            self.model_s += model_s
            self.model_calls += 1
            self.prompt_tokens += out.prompt_tokens
            self.completion_tokens += out.completion_tokens
            action = out.message
            traj.messages.append(action)
            result = await env.step(action)
            traj.messages.extend(result.observations)
            rt = result.timings
            self.tools_s += rt.tools_s
            self.user_s += rt.user_s
            self.tool_calls += len(action.tool_calls)
            self.format_errors += result.format_errors
            traj.steps.append(Step(index=index, action=action, observations=result.observations,
                                   tool_results=result.tool_results, reward=result.reward,
                                   done=result.done, format_errors=result.format_errors,
                                   info=result.info,
                                   timings=Timings(model_s=model_s, tools_s=rt.tools_s, user_s=rt.user_s,
                                                   reward_s=rt.reward_s, total_s=rt.total_s)))
            if result.final_answer is not None:
                traj.final_answer = result.final_answer
            if result.terminated:
                traj.status = Status.COMPLETED
                return True
            if result.truncated:
                traj.status = Status.MAX_TURNS
                return True
            if should_pause is not None and should_pause():
                return False
        if len(traj.steps) >= loop.max_steps:
            traj.status = Status.MAX_TURNS
            return True
        return False

    async def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        service_token = set_service_group(self.services)
        try:
            await self._close_env()
        finally:
            reset_service_group(service_token)

    async def _close_env(self) -> None:
        traj = self.traj
        with anyio.CancelScope(shield=True):
            try:
                with anyio.fail_after(60):
                    await self.env.aclose()
            except Exception as exc:  # noqa: BLE001
                if traj.status is not Status.INFRA_ERROR:
                    traj.status = Status.INFRA_ERROR
                    traj.error = f"closing the env failed: {exc}"

    async def finish(self) -> Trajectory:
        """Close the env, build the token views and score. Call once ``advance`` returned True
        (an unfinished episode is closed as cancelled)."""
        traj = self.traj
        t_start = time.perf_counter()
        if not self.done:
            traj.status = Status.CANCELLED
            self.done = True
        await self._close()
        traj.usage = Usage(prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
                           model_calls=self.model_calls, tool_calls=self.tool_calls,
                           format_errors=self.format_errors)
        timings = Timings(model_s=self.model_s, tools_s=self.tools_s, user_s=self.user_s)
        if self.pauses:
            traj.info["pauses"] = self.pauses
        if traj.status is not Status.INFRA_ERROR and traj.status is not Status.CANCELLED:
            traj.token_views = build_token_views(traj.messages)
            untokenised = [i for i, m in enumerate(traj.messages) if m.role == "assistant" and m.generation is None]
            if untokenised:
                traj.eval_only = (f"{len(untokenised)} assistant turn(s) carry no token ids (first: message "
                                  f"{untokenised[0]}): the policy or its server returned none")
            reward = self.loop.reward or self.env.reward
            if reward is not None:
                t0 = time.perf_counter()
                traj.reward = await score_safely(reward, traj, self.task)
                timings.reward_s = time.perf_counter() - t0
        timings.total_s = self._active_s + time.perf_counter() - t_start
        traj.timings = timings
        return traj


async def score_safely(reward: Reward, traj: Trajectory, task: Task) -> RewardResult:
    """A reward that raises is a failed reward (left out of its group), never a crash."""
    try:
        return await reward.score(traj, task)
    except anyio.get_cancelled_exc_class():
        raise
    except Exception as exc:  # noqa: BLE001
        log.warning("reward %s failed on task %s: %s", getattr(reward, "name", reward), task.id, exc)
        return RewardResult(failed=True, error=f"{type(exc).__name__}: {exc}")
