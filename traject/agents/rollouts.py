"""The Rollouts engine: many tasks x G samples, concurrently, streamed to a store.

Every episode runs as its own task under a concurrency limit, so a slow episode never holds
up the others (no turn-synchronous batching). Finished trajectories stream to the store as
they finish; a group is held back only when a GroupReward needs all of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio

from traject.agents.loop import AgentLoop
from traject.agents.policy import Policy
from traject.agents.store import TrajectoryStore
from traject.environments.base import Env
from traject.environments.registry import make as make_env
from traject.episode import EpisodeInfo, episode_seed, reset_episode, set_episode
from traject.rewards.base import GroupReward, Reward
from traject.types import RewardResult, Status, Task, Trajectory, new_id

log = logging.getLogger(__name__)


@dataclass
class RolloutStats:
    scheduled: int = 0
    skipped: int = 0
    finished: int = 0
    infra_errors: int = 0


class Rollouts:
    def __init__(
        self,
        policy: Policy,
        env: str | Callable[[], Env],
        *,
        group_size: int = 1,
        concurrency: int = 32,
        episode_timeout_s: float | None = None,
        reward: Reward | None = None,
        group_reward: GroupReward | None = None,
        store: TrajectoryStore | None = None,
        seed: int = 0,
        retry_infra: bool = False,
        on_trajectory: Callable[[Trajectory], None] | None = None,
    ) -> None:
        if group_size < 1 or concurrency < 1:
            raise ValueError("group_size and concurrency must be at least 1")
        self.env_factory: Callable[[], Env] = (lambda: make_env(env)) if isinstance(env, str) else env
        self.loop = AgentLoop(policy, reward=reward, episode_timeout_s=episode_timeout_s)
        self.group_size = group_size
        self.concurrency = concurrency
        self.group_reward = group_reward
        self.store = store
        self.seed = seed
        self.retry_infra = retry_infra
        self.on_trajectory = on_trajectory
        self.stats = RolloutStats()

    async def run(self, tasks: Sequence[Task]) -> list[Trajectory]:
        """Run every (task, sample) not already in the store; return the new trajectories."""
        done = self.store.completed_keys(retry_infra=self.retry_infra) if self.store else set()
        limiter = anyio.CapacityLimiter(self.concurrency)
        results: list[Trajectory] = []
        self.stats = RolloutStats()
        async with anyio.create_task_group() as tg:
            for task in tasks:
                todo = [i for i in range(self.group_size) if (task.id, i) not in done]
                self.stats.skipped += self.group_size - len(todo)
                if not todo:
                    continue
                self.stats.scheduled += len(todo)
                if self.group_reward is not None:
                    tg.start_soon(self._group, task, todo, limiter, results)
                else:
                    for i in todo:
                        tg.start_soon(self._single, task, i, limiter, results)
        return results

    async def _episode(self, task: Task, sample_index: int, limiter: anyio.CapacityLimiter) -> Trajectory:
        async with limiter:
            seed = episode_seed(self.seed, task.id, sample_index)
            token = set_episode(EpisodeInfo(new_id("ep_"), task.id, sample_index, seed))
            try:
                env = self.env_factory()
                return await self.loop.run(env, task, sample_index=sample_index, seed=seed)
            finally:
                reset_episode(token)

    async def _emit(self, traj: Trajectory, results: list[Trajectory]) -> None:
        if self.store is not None:
            await self.store.append(traj)
        results.append(traj)
        self.stats.finished += 1
        if traj.status is Status.INFRA_ERROR:
            self.stats.infra_errors += 1
        if self.on_trajectory is not None:
            self.on_trajectory(traj)

    async def _single(self, task: Task, i: int, limiter: anyio.CapacityLimiter, results: list[Trajectory]) -> None:
        await self._emit(await self._episode(task, i, limiter), results)

    async def _group(self, task: Task, todo: list[int], limiter: anyio.CapacityLimiter,
                     results: list[Trajectory]) -> None:
        group: list[Trajectory] = []

        async def one(i: int) -> None:
            group.append(await self._episode(task, i, limiter))

        async with anyio.create_task_group() as tg:
            for i in todo:
                tg.start_soon(one, i)
        group.sort(key=lambda t: t.sample_index)
        assert self.group_reward is not None
        scorable = [t for t in group if t.status not in (Status.INFRA_ERROR, Status.CANCELLED)
                    and not (t.reward is not None and t.reward.failed)]
        try:
            scores = await self.group_reward.score_group(scorable, task) if scorable else []
        except Exception as exc:  # noqa: BLE001 - a failed group reward fails the group's rewards
            log.warning("group reward failed on task %s: %s", task.id, exc)
            scores = [RewardResult(failed=True, error=f"{type(exc).__name__}: {exc}") for _ in scorable]
        for traj, score in zip(scorable, scores, strict=True):
            traj.reward = merge_group_score(traj.reward, score, self.group_reward.name)
        for traj in group:
            await self._emit(traj, results)


def merge_group_score(own: RewardResult | None, group: RewardResult, name: str) -> RewardResult:
    """Add a group reward to a trajectory's own reward as one more component."""
    if own is None:
        return group
    if group.failed or own.failed:
        return own.model_copy(update={"failed": True, "error": own.error or group.error})
    components = dict(own.components)
    components[name] = group.total
    return own.model_copy(update={"total": own.total + group.total, "components": components})
