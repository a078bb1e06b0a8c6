"""AgentLoop: one policy, one env, one task, one Trajectory."""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext

import anyio

from traject.agents.policy import Policy
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

    async def run(self, env: Env, task: Task, *, sample_index: int = 0, seed: int | None = None) -> Trajectory:
        async with anyio.create_task_group() as services:
            token = set_service_group(services)
            try:
                traj = await self._run(env, task, sample_index=sample_index, seed=seed)
            finally:
                reset_service_group(token)
                # Whatever a toolset left running is stopped with the episode.
                services.cancel_scope.cancel()
        return traj

    async def _run(self, env: Env, task: Task, *, sample_index: int, seed: int | None) -> Trajectory:
        traj = Trajectory(task_id=task.id, sample_index=sample_index, env=env.spec.name, seed=seed)
        t_start = time.perf_counter()
        timings = Timings()
        usage = Usage()
        try:
            with anyio.fail_after(self.episode_timeout_s) if self.episode_timeout_s else nullcontext():
                await self._episode(env, task, traj, timings, usage)
        except TimeoutError:
            traj.status = Status.TIMEOUT
            traj.error = f"episode exceeded {self.episode_timeout_s:g} s"
        except InfraError as exc:
            traj.status = Status.INFRA_ERROR
            traj.error = f"{type(exc).__name__}: {exc}"
        except anyio.get_cancelled_exc_class():
            traj.status = Status.CANCELLED
            raise
        except Exception as exc:  # noqa: BLE001 - the machinery failed, not the agent
            log.exception("episode of task %s failed", task.id)
            traj.status = Status.INFRA_ERROR
            traj.error = f"{type(exc).__name__}: {exc}"
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    with anyio.fail_after(60):
                        await env.aclose()
                except Exception as exc:  # noqa: BLE001
                    if traj.status is not Status.INFRA_ERROR:
                        traj.status = Status.INFRA_ERROR
                        traj.error = f"closing the env failed: {exc}"
            traj.usage = usage
            traj.timings = timings
        if traj.status is not Status.INFRA_ERROR:
            traj.token_views = build_token_views(traj.messages)
            reward = self.reward or env.reward
            if reward is not None:
                t0 = time.perf_counter()
                traj.reward = await score_safely(reward, traj, task)
                timings.reward_s = time.perf_counter() - t0
        timings.total_s = time.perf_counter() - t_start
        traj.timings = timings
        return traj

    async def _episode(self, env: Env, task: Task, traj: Trajectory, timings: Timings, usage: Usage) -> None:
        messages = await env.reset(task)
        traj.messages = list(messages)
        for index in range(self.max_steps):
            t0 = time.perf_counter()
            out = await self.policy.act(list(traj.messages), env.tools)
            model_s = time.perf_counter() - t0
            timings.model_s += model_s
            usage.model_calls += 1
            usage.prompt_tokens += out.prompt_tokens
            usage.completion_tokens += out.completion_tokens
            action = out.message
            traj.messages.append(action)
            result = await env.step(action)
            traj.messages.extend(result.observations)
            timings.tools_s += result.timings.tools_s
            timings.user_s += result.timings.user_s
            usage.tool_calls += len(action.tool_calls)
            usage.format_errors += result.format_errors
            step_timings = result.timings.model_copy(update={"model_s": model_s})
            traj.steps.append(Step(index=index, action=action, observations=result.observations,
                                   tool_results=result.tool_results, reward=result.reward,
                                   done=result.done, format_errors=result.format_errors,
                                   info=result.info, timings=step_timings))
            if result.final_answer is not None:
                traj.final_answer = result.final_answer
            if result.terminated:
                traj.status = Status.COMPLETED
                return
            if result.truncated:
                traj.status = Status.MAX_TURNS
                return
        traj.status = Status.MAX_TURNS


async def score_safely(reward: Reward, traj: Trajectory, task: Task) -> RewardResult:
    """A reward that raises is a failed reward (left out of its group), never a crash."""
    try:
        return await reward.score(traj, task)
    except anyio.get_cancelled_exc_class():
        raise
    except Exception as exc:  # noqa: BLE001
        log.warning("reward %s failed on task %s: %s", getattr(reward, "name", reward), task.id, exc)
        return RewardResult(failed=True, error=f"{type(exc).__name__}: {exc}")
