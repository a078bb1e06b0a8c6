"""Async off-policy rollouts: generation keeps running while the learner trains.

:class:`OffPolicyRollouts` holds the three parts of it, shared by ``LocalTrainer``
(``rollout.mode: async``) and ``benchmarks/async_rl.py``:

- the **producer**: groups (one task x ``group_size`` episodes, through the Rollouts engine)
  are started whenever admission allows, and queue up as they finish, in finishing order;
- the **staleness gate**: the learner at version ``v`` (``v`` updates done) takes a group only
  if ``v - min(version of its turns) <= max_off_policy_steps``; older groups are dropped or
  re-queued (started again), and counted either way;
- the **weight versions**: after each update the learner pushes its weights through a
  :class:`WeightSink` and only then publishes the new version, which opens admission.

Admission is AReaL's rule: at version ``v`` at most ``(v + max_off_policy_steps + 1) *
groups_per_step`` groups may have been accepted, be waiting, or be running. With
``max_off_policy_steps = 0`` this is exactly "generate a batch, then train on it"; with ``k``
the producer runs up to ``k`` batches ahead. An episode that spans a weight push samples its
later turns under the newer weights, and each turn's Generation keeps its own version; the
group's staleness counts from its oldest turn.

Tasks and seeds depend only on the batch index (``tasks_for_batch(j)``, ``seed_for_batch(j)``),
as in synchronous training. The loss then corrects for the sampler/learner gap with truncated
importance sampling against the sampler's logprobs (``algorithm.tis_cap``).
"""

from __future__ import annotations

import shutil
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import anyio
from anyio.abc import TaskGroup

from traject.agents.policy import Policy
from traject.agents.rollouts import Rollouts
from traject.environments.base import Env
from traject.rewards.base import Reward
from traject.types import Task, Trajectory

if TYPE_CHECKING:
    from traject.agents.ray_rollouts import RayEpisodes

__all__ = ["Group", "InProcessWeights", "OffPolicyRollouts", "OffPolicyStats", "ServerWeights", "WeightSink",
           "turn_versions"]

R = TypeVar("R")


class WeightSink(Protocol):
    """Where the learner's weights go after an update: a sampling policy in this process, an
    inference server's weight-update endpoint, ..."""

    async def push(self, version: int) -> None: ...


class InProcessWeights:
    """Copies the learner's model into a sampling policy in this process (``HFPolicy``), between
    two of its batches."""

    def __init__(self, source: Any, policy: Any) -> None:
        self.source = source
        self.policy = policy

    async def push(self, version: int) -> None:
        await anyio.to_thread.run_sync(self.policy.load_weights, self.source, version)


class ServerWeights:
    """Saves the learner's model under ``directory`` and has the inference server load it
    (``CompletionsPolicy.update_weights``: traject serve's or SGLang's weight-update endpoint).
    Only the newest ``keep`` saves stay on disk."""

    def __init__(self, source: Any, tokenizer: Any, policy: Any, directory: str | Path, keep: int = 2) -> None:
        self.source = source
        self.tokenizer = tokenizer
        self.policy = policy
        self.directory = Path(directory)
        self.keep = keep
        self.version: int | None = None

    def _save(self, path: Path) -> None:
        self.source.save_pretrained(path)
        self.tokenizer.save_pretrained(path)

    async def push(self, version: int) -> None:
        path = self.directory / f"v{version:06d}"
        await anyio.to_thread.run_sync(self._save, path)
        served = await self.policy.update_weights(str(path.resolve()), version)
        if served != version:
            raise RuntimeError(f"the server serves policy version {served} after loading version {version}")
        self.version = version
        old = sorted(self.directory.glob("v[0-9]*"))[:-self.keep]
        await anyio.to_thread.run_sync(lambda: [shutil.rmtree(p, ignore_errors=True) for p in old])


def turn_versions(traj: Trajectory) -> list[int]:
    """The policy version of each assistant turn that recorded one."""
    return [m.generation.policy_version for m in traj.messages
            if m.role == "assistant" and m.generation is not None and m.generation.policy_version is not None]


@dataclass
class Group:
    """One task's ``group_size`` trajectories, as the producer made them."""

    index: int                     # admission order
    batch: int                     # the batch index its task and seed come from
    task: Task
    started_version: int
    attempt: int = 0               # 0, or how many times it was re-queued as stale
    trajectories: list[Trajectory] = field(default_factory=list)

    @property
    def versions(self) -> list[int]:
        """Distinct turn versions, ascending."""
        return sorted({v for t in self.trajectories for v in turn_versions(t)})

    @property
    def oldest_version(self) -> int:
        """The oldest weights any of its turns came from (its start, for policies that record
        no versions: versions only grow)."""
        return min(self.versions, default=self.started_version)

    def staleness(self, version: int) -> int:
        return version - self.oldest_version


@dataclass
class OffPolicyStats:
    """Counts since the last :meth:`OffPolicyRollouts.next_batch` (or the start)."""

    accepted: int = 0
    dropped: int = 0
    requeued: int = 0
    staleness: list[int] = field(default_factory=list)
    wait_s: float = 0.0            # the learner waiting for a full batch

    def as_metrics(self) -> dict[str, float]:
        s = self.staleness
        return {"offpolicy/accepted_groups": self.accepted, "offpolicy/stale_dropped_groups": self.dropped,
                "offpolicy/stale_requeued_groups": self.requeued,
                "offpolicy/staleness_mean": sum(s) / len(s) if s else 0.0,
                "offpolicy/staleness_max": max(s, default=0), "time/batch_wait_s": self.wait_s}


@dataclass
class _Todo:
    batch: int
    task: Task
    attempt: int = 0


class OffPolicyRollouts:
    """The producer, the staleness gate and the weight versions (see the module doc).

    Use as ``async with OffPolicyRollouts(...) as rl:`` then, per learner step,
    ``result = await rl.step(learn, sink)``: the next batch of ``groups_per_step`` groups
    within the bound goes to ``learn``, the weights go to ``sink``, and the version advances.
    """

    def __init__(self, policy: Policy, env_factory: Callable[[], Env], *,
                 tasks_for_batch: Callable[[int], Sequence[Task]], seed_for_batch: Callable[[int], int],
                 group_size: int, groups_per_step: int, max_off_policy_steps: int,
                 on_stale: Literal["drop", "requeue"] = "requeue", concurrency: int = 64,
                 episode_timeout_s: float | None = None, reward: Reward | None = None,
                 version: int = 0, start_batch: int | None = None, remote: RayEpisodes | None = None) -> None:
        if max_off_policy_steps < 0:
            raise ValueError("max_off_policy_steps must be >= 0")
        self.policy = policy
        self.env_factory = env_factory
        self.tasks_for_batch = tasks_for_batch
        self.seed_for_batch = seed_for_batch
        self.group_size = group_size
        self.groups_per_step = groups_per_step
        self.max_off_policy_steps = max_off_policy_steps
        self.on_stale = on_stale
        self.concurrency = concurrency
        self.episode_timeout_s = episode_timeout_s
        self.reward = reward
        self.remote = remote  # episodes in Ray actors (Rollouts(remote=...))
        #: The learner's version: updates done, whose weights the sampler has.
        self.version = version
        self.stats = OffPolicyStats()
        self._consumed = version * groups_per_step  # groups the learner took
        self._ready: deque[Group] = deque()
        self._running: dict[int, Rollouts] = {}
        self._requeue: deque[_Todo] = deque()
        self._next_batch = version if start_batch is None else start_batch
        self._pending: deque[_Todo] = deque()
        self._admitted = 0
        self._changed = anyio.Event()
        self._tg: TaskGroup | None = None
        self._error: BaseException | None = None

    # --- the learner's side ------------------------------------------------------------------

    async def step(self, learn: Callable[[list[Group]], Awaitable[R]], sink: WeightSink) -> R:
        """One learner step: the next batch to ``learn``, its weights to ``sink``, then the new
        version opens admission."""
        groups = await self.next_batch()
        result = await learn(groups)
        await sink.push(self.version + 1)
        self.set_version(self.version + 1)
        return result

    async def next_batch(self) -> list[Group]:
        """``groups_per_step`` finished groups within the staleness bound, in finishing order;
        ``self.stats`` then holds the counts since the previous call."""
        t0 = time.perf_counter()
        taken: list[Group] = []
        while len(taken) < self.groups_per_step:
            if self._error is not None:
                raise RuntimeError(f"the rollout producer failed: {self._error}") from self._error
            if not self._ready:
                await self._wait()
                continue
            group = self._ready.popleft()
            staleness = group.staleness(self.version)
            if staleness > self.max_off_policy_steps:
                if self.on_stale == "requeue":
                    self.stats.requeued += 1
                    self._requeue.append(_Todo(group.batch, group.task, group.attempt + 1))
                else:
                    self.stats.dropped += 1
                self._notify()
                continue
            self.stats.staleness.append(staleness)
            taken.append(group)
            self._consumed += 1  # counted at once: the producer may run while this waits for more
        self.stats.accepted = len(taken)
        self.stats.wait_s = time.perf_counter() - t0
        return taken

    def take_stats(self) -> OffPolicyStats:
        stats, self.stats = self.stats, OffPolicyStats()
        return stats

    def set_version(self, version: int) -> None:
        """The sampler now has the weights of ``version``: admit more work."""
        self.version = version
        for rollouts in self._running.values():
            rollouts.policy_version = version
        self._notify()

    # --- the producer --------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return len(self._running)

    def _capacity(self) -> int:
        limit = (self.version + self.max_off_policy_steps + 1) * self.groups_per_step
        return limit - (self._consumed + len(self._ready) + len(self._running))

    def _max_running(self) -> int:
        return max(1, self.concurrency // self.group_size)

    def _next_todo(self) -> _Todo:
        if self._requeue:
            return self._requeue.popleft()
        if not self._pending:
            self._pending.extend(_Todo(self._next_batch, t) for t in self.tasks_for_batch(self._next_batch))
            if not self._pending:
                raise ValueError(f"tasks_for_batch({self._next_batch}) gave no tasks")
            self._next_batch += 1
        return self._pending.popleft()

    async def _produce(self) -> None:
        assert self._tg is not None
        while True:
            while self._capacity() > 0 and len(self._running) < self._max_running():
                todo = self._next_todo()
                index = self._admitted
                self._admitted += 1
                seed = self.seed_for_batch(todo.batch) + 7_919 * todo.attempt
                rollouts = Rollouts(self.policy, self.env_factory, group_size=self.group_size,
                                    concurrency=self.group_size, episode_timeout_s=self.episode_timeout_s,
                                    reward=self.reward, seed=seed % 2**62, policy_version=self.version,
                                    remote=self.remote)
                self._running[index] = rollouts
                group = Group(index=index, batch=todo.batch, task=todo.task, started_version=self.version,
                              attempt=todo.attempt)
                self._tg.start_soon(self._run_group, rollouts, group)
            await self._wait()

    async def _run_group(self, rollouts: Rollouts, group: Group) -> None:
        try:
            trajs = await rollouts.run([group.task])
        except Exception as exc:  # noqa: BLE001 - the learner hears of it from next_batch()
            self._error = exc
            self._notify()
            return
        finally:
            self._running.pop(group.index, None)
        group.trajectories = sorted(trajs, key=lambda t: t.sample_index)
        self._ready.append(group)
        self._notify()

    def _notify(self) -> None:
        # Wakes everyone waiting now; later waiters wait on the fresh event.
        self._changed.set()
        self._changed = anyio.Event()

    async def _wait(self) -> None:
        await self._changed.wait()

    async def __aenter__(self) -> OffPolicyRollouts:
        self._tg_cm = anyio.create_task_group()
        self._tg = await self._tg_cm.__aenter__()
        self._tg.start_soon(self._produce)
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        try:
            return await self._tg_cm.__aexit__(*exc)
        finally:
            self._tg = None
