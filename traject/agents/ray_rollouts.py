"""Episodes in Ray actors, across the nodes of a Ray cluster (``Rollouts(..., remote=...)``).

The driver keeps what a run owns: the schedule, group rewards, the one TrajectoryStore that
every finished trajectory streams into (so ``--resume`` works as before). Each actor holds a
policy and an env factory and runs whole episodes (env, tools, sandboxes, policy calls), up to
``actor_concurrency`` at once; the driver sends each episode to the actor with the fewest in
flight. Actors are placed round robin over the nodes and restarted elsewhere when their node dies;
the episodes they had in flight come back as infra errors (kept out of scores and training)
and, with ``retry_infra``, are run once more on a live actor.

What travels to the actors (``env_factory``, ``policy_factory``, ``reward``) is pickled with
cloudpickle: give factories, not live objects (a policy holds connections). Every node needs
traject (and the env's own packages) installed; Ray comes with the ``verl`` extra.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio

from traject.agents.policy import Policy
from traject.environments.base import Env
from traject.rewards.base import Reward
from traject.types import Status, Task, Trajectory

log = logging.getLogger(__name__)


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - ray ships with the verl extra
        raise ImportError("Ray rollouts need Ray: install the `verl` extra (pip install 'traject[verl]')") from exc
    return ray


class _EpisodeActor:
    """Runs episodes in a Ray worker process (wrapped with ``ray.remote`` at start)."""

    def __init__(self, env_factory: Callable[[], Env], policy_factory: Callable[[], Policy],
                 reward: Reward | None, episode_timeout_s: float | None) -> None:
        from traject.agents.loop import AgentLoop

        self.env_factory = env_factory
        self.policy = policy_factory()
        self.loop = AgentLoop(self.policy, reward=reward, episode_timeout_s=episode_timeout_s)

    def node(self) -> str:
        return _ray().get_runtime_context().get_node_id()

    def pid(self) -> int:
        return os.getpid()

    async def run(self, task_json: str, sample_index: int, seed: int, episode_id: str) -> str:
        from traject.episode import EpisodeInfo, reset_episode, set_episode

        task = Task.model_validate_json(task_json)
        token = set_episode(EpisodeInfo(episode_id, task.id, sample_index, seed))
        try:
            env = self.env_factory()
            async with anyio.create_task_group() as services:
                episode = self.loop.start(env, task, sample_index=sample_index, seed=seed, services=services)
                try:
                    await episode.advance(None)
                    traj = await episode.finish()
                finally:
                    services.cancel_scope.cancel()
        finally:
            reset_episode(token)
        traj.info["ray_node"] = self.node()
        return traj.model_dump_json()


@dataclass
class _Actor:
    handle: Any
    node: str = ""
    in_flight: int = 0
    #: After it lost episodes: a ``node()`` call; the actor takes episodes again once that
    #: answers (Ray restarted it on a live node), instead of failing them while it restarts.
    probe: Any = None


class RayEpisodes:
    """Where ``Rollouts`` sends episodes when it runs them on Ray. ``address``: a cluster
    (``ray://...`` or ``HOST:PORT``), ``"auto"`` (RAY_ADDRESS or a cluster started on this
    machine with ``ray start``), or None (a Ray instance of this process)."""

    def __init__(
        self,
        env_factory: Callable[[], Env],
        policy_factory: Callable[[], Policy],
        *,
        address: str | None = "auto",
        reward: Reward | None = None,
        episode_timeout_s: float | None = None,
        actors: int | None = None,
        actor_concurrency: int = 64,
        retry_infra: bool = False,
        runtime_env: dict[str, Any] | None = None,
    ) -> None:
        self.env_factory = env_factory
        self.policy_factory = policy_factory
        self.address = address
        self.reward = reward
        self.episode_timeout_s = episode_timeout_s
        self.n_actors = actors
        self.actor_concurrency = actor_concurrency
        self.retry_infra = retry_infra
        self.runtime_env = runtime_env
        self._actors: list[_Actor] = []
        self._owns_ray = False
        self.stats = {"dispatched": 0, "actor_failures": 0, "retried": 0}

    # ------------------------------------------------------------------ lifecycle

    def start_sync(self) -> None:
        ray = _ray()
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
            if self.runtime_env:
                kwargs["runtime_env"] = self.runtime_env
            if self.address in (None, "local"):
                kwargs.update(include_dashboard=False, num_cpus=max(2, os.cpu_count() or 2))
            else:
                kwargs["address"] = self.address
            try:
                ray.init(**kwargs)
            except ConnectionError as exc:
                raise ConnectionError(f"no Ray cluster at {self.address}: {exc} "
                                      "(start one with `ray start --head`, or pass --ray ADDRESS)") from None
            self._owns_ray = True
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
        count = self.n_actors or len(nodes)
        remote_cls = ray.remote(_EpisodeActor)

        def make(node: str) -> Any:
            # soft: an actor restarted after its node died may go to any live node
            where = NodeAffinitySchedulingStrategy(node_id=node, soft=True)
            return remote_cls.options(max_restarts=-1, max_task_retries=0, num_cpus=0,
                                      scheduling_strategy=where, max_concurrency=self.actor_concurrency,
                                      ).remote(self.env_factory, self.policy_factory, self.reward,
                                               self.episode_timeout_s)

        wanted = [nodes[i % len(nodes)] for i in range(count)]  # round robin over the nodes
        handles = [make(node) for node in wanted]
        # A node that just joined may not take actors yet (soft affinity then places them
        # elsewhere): remake those for a few seconds. Fails here, at start, when an actor
        # cannot be made at all (an env or policy factory that raises).
        for attempt in range(10):
            placed = ray.get([h.node.remote() for h in handles], timeout=120)
            off = [i for i, (got, want) in enumerate(zip(placed, wanted, strict=True)) if got != want]
            if not off or attempt == 9:
                break
            time.sleep(0.5)
            for i in off:
                ray.kill(handles[i])
                handles[i] = make(wanted[i])
        self._actors = [_Actor(h, node) for h, node in zip(handles, placed, strict=True)]
        log.info("ray rollouts: %d actors on %d nodes", count, len(nodes))

    async def __aenter__(self) -> RayEpisodes:
        await anyio.to_thread.run_sync(self.start_sync)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await anyio.to_thread.run_sync(self.close_sync)

    def close_sync(self) -> None:
        ray = _ray()
        for actor in self._actors:
            try:
                ray.kill(actor.handle)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self._actors = []
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False

    def actor_nodes(self) -> list[str]:
        ray = _ray()
        return ray.get([a.handle.node.remote() for a in self._actors], timeout=60)

    # ------------------------------------------------------------------ episodes

    async def run(self, task: Task, sample_index: int, seed: int, episode_id: str) -> Trajectory:
        """The episode's trajectory, run on an actor; an infra error when the actor died."""
        attempts = 2 if self.retry_infra else 1
        error, node = "", ""
        for attempt in range(attempts):
            try:
                return await self._run_once(task, sample_index, seed, episode_id)
            except _ActorLost as exc:
                self.stats["actor_failures"] += 1
                error, node = str(exc), exc.node
                if attempt + 1 < attempts:
                    self.stats["retried"] += 1
                    log.warning("episode %s/%d: %s; running it again (retry_infra)", task.id, sample_index, error)
        return Trajectory(task_id=task.id, sample_index=sample_index, seed=seed, status=Status.INFRA_ERROR,
                          error=f"RayActorError: {error}", info={"episode_id": episode_id, "ray_node": node})

    def _available(self) -> list[_Actor]:
        """The actors to send episodes to: those not recovering from a loss (all, if none is)."""
        ray = _ray()
        for a in self._actors:
            if a.probe is None:
                continue
            ready, _ = ray.wait([a.probe], timeout=0)  # a look, not a wait
            if ready:
                try:
                    a.node, a.probe = ray.get(a.probe, timeout=0), None
                except ray.exceptions.RayError:  # still restarting: ask again
                    a.probe = a.handle.node.remote()
        return [a for a in self._actors if a.probe is None] or self._actors

    async def _run_once(self, task: Task, sample_index: int, seed: int, episode_id: str) -> Trajectory:
        ray = _ray()
        actor = min(self._available(), key=lambda a: a.in_flight)
        actor.in_flight += 1
        self.stats["dispatched"] += 1
        ref = actor.handle.run.remote(task.model_dump_json(), sample_index, seed, episode_id)
        try:
            raw = await ref
        except anyio.get_cancelled_exc_class():
            ray.cancel(ref)
            raise
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                ray.exceptions.NodeDiedError, ray.exceptions.ObjectLostError) as exc:
            if actor.probe is None:
                actor.probe = actor.handle.node.remote()
            raise _ActorLost(f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}", actor.node) from exc
        except ray.exceptions.RayError as exc:  # the episode machinery itself failed there
            raise _ActorLost(f"{type(exc).__name__}: {str(exc)[:300]}", actor.node) from exc
        finally:
            actor.in_flight -= 1
        return Trajectory.model_validate_json(raw)


class _ActorLost(Exception):
    def __init__(self, message: str, node: str) -> None:
        super().__init__(message)
        self.node = node
