"""The Rollouts engine: many tasks x G samples, concurrently, streamed to a store.

``concurrency`` workers each run one episode at a time, start to finish, so a slow episode
never holds up the others (no turn-synchronous batching), and the number of coroutines stays
bounded however many tasks there are. Finished trajectories stream to the store as they
finish; a group is held back only when a GroupReward needs all of it.

Partial rollouts (optional): with ``partial=PartialRollouts(...)``, an episode is paused at a
step boundary once it has taken ``max_steps_per_run`` steps in this ``run()``, or once
``stop_after`` trajectories have finished in this ``run()`` (the batch is full). Paused
episodes keep their env open and are continued first by the next ``run()``, under whatever
policy version is then current. Every assistant message with a Generation keeps the
``policy_version`` it was sampled under (stamped from ``Rollouts.policy_version`` when the
policy did not set one), and ``Trajectory.info["policy_versions"]`` lists it per turn, for
off-policy correction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup

from traject.agents.loop import AgentLoop, Episode
from traject.agents.policy import Policy, PolicyOutput
from traject.agents.store import TrajectoryStore
from traject.environments.base import Env
from traject.environments.registry import make as make_env
from traject.episode import EpisodeInfo, episode_seed, reset_episode, set_episode
from traject.rewards.base import GroupReward, Reward
from traject.types import Message, RewardResult, Status, Task, ToolSchema, Trajectory, new_id

if TYPE_CHECKING:
    from traject.agents.ray_rollouts import RayEpisodes

log = logging.getLogger(__name__)


@dataclass
class RolloutStats:
    scheduled: int = 0
    skipped: int = 0
    finished: int = 0
    infra_errors: int = 0
    paused: int = 0
    resumed: int = 0


@dataclass(frozen=True)
class PartialRollouts:
    """When to pause an episode at a step boundary (see the module doc)."""

    max_steps_per_run: int | None = None
    stop_after: int | None = None

    def __post_init__(self) -> None:
        if self.max_steps_per_run is not None and self.max_steps_per_run < 1:
            raise ValueError("max_steps_per_run must be at least 1")
        if self.stop_after is not None and self.stop_after < 1:
            raise ValueError("stop_after must be at least 1")


@dataclass
class _Paused:
    episode: Episode
    info: EpisodeInfo


class _VersionStamp:
    """Wraps the policy to stamp the current policy version on Generations that lack one."""

    def __init__(self, policy: Policy, rollouts: Rollouts) -> None:
        self.policy = policy
        self.rollouts = rollouts

    async def act(self, messages: list[Message], tools: list[ToolSchema]) -> PolicyOutput:
        out = await self.policy.act(messages, tools)
        gen = out.message.generation
        version = self.rollouts.policy_version
        if gen is not None and gen.policy_version is None and version is not None:
            gen.policy_version = version
        return out


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
        partial: PartialRollouts | None = None,
        policy_version: int | None = None,
        remote: RayEpisodes | None = None,
    ) -> None:
        if group_size < 1 or concurrency < 1:
            raise ValueError("group_size and concurrency must be at least 1")
        if remote is not None and partial is not None:
            raise ValueError("partial rollouts keep episodes open in this process: not with remote (Ray) episodes")
        self.env_factory: Callable[[], Env] = (lambda: make_env(env)) if isinstance(env, str) else env
        self.policy = policy
        self.loop = AgentLoop(_VersionStamp(policy, self), reward=reward, episode_timeout_s=episode_timeout_s)
        self.group_size = group_size
        self.concurrency = concurrency
        self.group_reward = group_reward
        self.store = store
        self.seed = seed
        self.retry_infra = retry_infra
        self.on_trajectory = on_trajectory
        self.partial = partial
        #: The version of the policy's weights; a trainer bumps it after each update.
        self.policy_version = policy_version
        #: Where episodes run when not in this process (Ray actors; see ray_rollouts.py).
        self.remote = remote
        self.stats = RolloutStats()
        #: Episodes paused at a step boundary, continued first by the next ``run()``.
        self.paused: list[_Paused] = []
        self._groups: dict[str, list[Trajectory]] = {}
        self._group_size_left: dict[str, int] = {}
        self._stopping = False
        self._finished_this_run = 0
        self._hold: TaskGroup | None = None

    async def __aenter__(self) -> Rollouts:
        """Partial rollouts keep paused episodes (and their toolsets' helpers) alive between
        ``run()`` calls: that needs a task group that outlives them, held by ``async with``."""
        self._hold_cm = anyio.create_task_group()
        self._hold = await self._hold_cm.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        hold = self._hold
        assert hold is not None
        try:
            with anyio.CancelScope(shield=True):
                await self.aclose()
        finally:
            self._hold = None
            hold.cancel_scope.cancel()
            await self._hold_cm.__aexit__(*exc)  # type: ignore[arg-type]

    def pending(self, tasks: Sequence[Task]) -> list[tuple[Task, int]]:
        """The (task, sample) pairs a ``run(tasks)`` would start: those not already in the
        store and not paused."""
        done = self.store.completed_keys(retry_infra=self.retry_infra) if self.store else set()
        done |= {(p.episode.task.id, p.episode.sample_index) for p in self.paused}
        return [(task, i) for task in tasks for i in range(self.group_size) if (task.id, i) not in done]

    async def run(self, tasks: Sequence[Task]) -> list[Trajectory]:
        """Continue paused episodes, then run every (task, sample) not already in the store;
        return the trajectories finished in this call."""
        if self.partial is not None and self._hold is None:
            raise RuntimeError("partial rollouts keep episodes open between run() calls: use "
                               "`async with Rollouts(..., partial=...) as rollouts:`")
        todo = self.pending(tasks)
        ids = {t.id for t in tasks}
        in_tasks = sum(1 for p in self.paused if p.episode.task.id in ids)
        self.stats = RolloutStats(scheduled=len(todo), skipped=len(tasks) * self.group_size - len(todo) - in_tasks)
        self._stopping = False
        self._finished_this_run = 0
        results: list[Trajectory] = []
        paused, self.paused = self.paused, []
        self.stats.resumed = len(paused)
        if self.group_reward is not None:
            for task, _ in todo:
                self._group_size_left[task.id] = self._group_size_left.get(task.id, 0) + 1
        items: Iterator[_Paused | tuple[Task, int]] = iter([*paused, *todo])
        started_groups: set[str] = {p.episode.task.id for p in paused}
        n_workers = min(self.concurrency, len(paused) + len(todo))
        try:
            async with anyio.create_task_group() as tg:
                for _ in range(n_workers):
                    tg.start_soon(self._worker, items, started_groups, results, tg)
        finally:
            # Items never started stay pending: they are not in the store, so the next run
            # (or a resumed one) picks them up. Their group counts are given back.
            for item in items:
                if isinstance(item, _Paused):
                    self.paused.append(item)
                elif self.group_reward is not None:
                    self._group_size_left[item[0].id] -= 1
        self.stats.paused = len(self.paused)
        return results

    async def aclose(self) -> None:
        """Close the envs of paused episodes (their trajectories are dropped, as cancelled)."""
        paused, self.paused = self.paused, []
        for p in paused:
            await p.episode.finish()

    async def _worker(self, items: Iterator[_Paused | tuple[Task, int]], started_groups: set[str],
                      results: list[Trajectory], tg: TaskGroup) -> None:
        partial = self.partial
        max_steps = partial.max_steps_per_run if partial else None
        should_pause = (lambda: self._stopping) if partial and partial.stop_after else None
        deferred: list[_Paused | tuple[Task, int]] = []
        for item in items:
            if self._stopping:
                # The batch is full: start nothing new, except the rest of a group already begun.
                if isinstance(item, _Paused) or item[0].id not in started_groups or self.group_reward is None:
                    deferred.append(item)
                    continue
            token = None
            try:
                if isinstance(item, _Paused):
                    episode, info = item.episode, item.info
                    token = set_episode(info)
                    traj = await self._advance(episode, info, max_steps, should_pause)
                else:
                    task, i = item
                    started_groups.add(task.id)
                    seed = episode_seed(self.seed, task.id, i)
                    info = EpisodeInfo(new_id("ep_"), task.id, i, seed)
                    token = set_episode(info)
                    if self.remote is not None:
                        traj = await self.remote.run(task, i, seed, info.episode_id)
                        self._stamp(traj)
                        episode = None
                    elif self.partial is not None and self._hold is not None:
                        env = self.env_factory()
                        # Episodes that may pause get their helpers' task group from the
                        # Rollouts' own, which outlives this run() call.
                        episode = self.loop.start(env, task, sample_index=i, seed=seed, services=self._hold)
                        traj = await self._advance(episode, info, max_steps, should_pause)
                    else:
                        env = self.env_factory()
                        async with anyio.create_task_group() as services:
                            episode = self.loop.start(env, task, sample_index=i, seed=seed, services=services)
                            try:
                                traj = await self._advance(episode, info, max_steps, should_pause)
                            finally:
                                services.cancel_scope.cancel()
            finally:
                if token is not None:
                    reset_episode(token)
            if traj is None:
                continue
            _record_versions(traj)
            self._finished_this_run += 1
            if self.partial and self.partial.stop_after and self._finished_this_run >= self.partial.stop_after:
                self._stopping = True
            if self.group_reward is None:
                # Written (and fsynced, batched with others) in its own task: the worker moves
                # on to its next episode instead of waiting for the disk.
                tg.start_soon(self._emit, traj, results)
            else:
                self._collect(item[0] if episode is None else episode.task, traj, results, tg)
        self._requeue(deferred)

    def _stamp(self, traj: Trajectory) -> None:
        """What _VersionStamp does in this process, for an episode run elsewhere."""
        if self.policy_version is None:
            return
        for m in traj.messages:
            if m.role == "assistant" and m.generation is not None and m.generation.policy_version is None:
                m.generation.policy_version = self.policy_version

    async def _advance(self, episode: Episode, info: EpisodeInfo, max_steps: int | None,
                       should_pause: Callable[[], bool] | None) -> Trajectory | None:
        """Run the episode on; None when it paused (it is then in ``self.paused``)."""
        if not await episode.advance(max_steps, should_pause=should_pause):
            self.paused.append(_Paused(episode, info))
            return None
        return await episode.finish()

    def _requeue(self, deferred: list[_Paused | tuple[Task, int]]) -> None:
        for item in deferred:
            if isinstance(item, _Paused):
                self.paused.append(item)
            elif self.group_reward is not None:
                self._group_size_left[item[0].id] -= 1

    def _collect(self, task: Task, traj: Trajectory, results: list[Trajectory], tg: TaskGroup) -> None:
        group = self._groups.setdefault(task.id, [])
        group.append(traj)
        self._group_size_left[task.id] -= 1
        if self._group_size_left[task.id] == 0:
            del self._groups[task.id], self._group_size_left[task.id]
            tg.start_soon(self._score_group, task, group, results)

    async def _emit(self, traj: Trajectory, results: list[Trajectory]) -> None:
        if self.store is not None:
            await self.store.append(traj)
        results.append(traj)
        self.stats.finished += 1
        if traj.status is Status.INFRA_ERROR:
            self.stats.infra_errors += 1
        if self.on_trajectory is not None:
            self.on_trajectory(traj)

    async def _score_group(self, task: Task, group: list[Trajectory], results: list[Trajectory]) -> None:
        group.sort(key=lambda t: t.sample_index)
        assert self.group_reward is not None
        scorable = [t for t in group if t.status not in (Status.INFRA_ERROR, Status.CANCELLED)
                    and not (t.reward is not None and t.reward.failed)]
        try:
            scores = await self.group_reward.score_group(scorable, task) if scorable else []
            if len(scores) != len(scorable):
                raise ValueError(f"score_group returned {len(scores)} results for {len(scorable)} trajectories")
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:  # noqa: BLE001 - a failed group reward fails the group's rewards
            log.warning("group reward failed on task %s: %s", task.id, exc)
            scores = [RewardResult(failed=True, error=f"{type(exc).__name__}: {exc}") for _ in scorable]
        for traj, score in zip(scorable, scores, strict=True):
            traj.reward = merge_group_score(traj.reward, score, self.group_reward.name)
        for traj in group:
            await self._emit(traj, results)


def _record_versions(traj: Trajectory) -> None:
    versions = [m.generation.policy_version for m in traj.messages
                if m.role == "assistant" and m.generation is not None]
    if versions and any(v is not None for v in versions):
        traj.info["policy_versions"] = versions


def merge_group_score(own: RewardResult | None, group: RewardResult, name: str) -> RewardResult:
    """Add a group reward to a trajectory's own reward as one more component."""
    if own is None:
        return group
    if group.failed or own.failed:
        return own.model_copy(update={"failed": True, "error": own.error or group.error})
    components = dict(own.components)
    components[name] = group.total
    return own.model_copy(update={"total": own.total + group.total, "components": components})
