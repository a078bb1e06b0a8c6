"""Run an eval: tasks x samples through the Rollouts engine into a run directory.

A run is resumable: finished trajectories are fsynced as they finish, so a run that is
interrupted (Ctrl-C) or killed loses only the episodes in flight, and ``resume=True`` runs
exactly the (task, sample) pairs that have no record yet.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import anyio

from traject.agents.policy import Policy
from traject.agents.rollouts import Rollouts
from traject.agents.store import TrajectoryStore
from traject.environments.base import Env
from traject.environments.registry import load_tasks, make
from traject.eval.config import ConfigError, EvalConfig
from traject.eval.markdown import summary_markdown
from traject.eval.policies import make_policy
from traject.eval.run_dir import (
    TASKS,
    TRAJECTORIES,
    EvalResults,
    Invocation,
    RunDir,
    config_diff,
    new_manifest,
    now,
)
from traject.eval.summary import EvalSummary, summarize
from traject.eval.task_file import load_task_file, write_task_file
from traject.types import Status, Task, Trajectory


class ProgressSink(Protocol):
    def start(self, total: int, done: int) -> None: ...
    def advance(self, traj: Trajectory) -> None: ...


def resolve_tasks(config: EvalConfig) -> list[Task]:
    src = config.tasks
    if src.file:
        from traject.environments.registry import registry

        try:
            model = registry.get(config.env).task_data_model()
        except KeyError as exc:
            raise ConfigError(str(exc.args[0]) if exc.args else repr(exc)) from None
        return load_task_file(src.file, model, env=config.env)
    options: dict[str, object] = {"seed": src.seed}
    if src.split is not None:
        options["split"] = src.split
    if src.n is not None:
        options["n"] = src.n
    try:
        return load_tasks(config.env, **options)
    except KeyError as exc:
        raise ConfigError(str(exc.args[0]) if exc.args else repr(exc)) from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"tasks of env {config.env!r}: {exc}") from None


def env_factory(config: EvalConfig):  # noqa: ANN201 - a zero-argument Env factory
    def factory() -> Env:
        return make(config.env, **config.env_config)

    try:
        env = factory()
    except KeyError as exc:
        raise ConfigError(str(exc.args[0]) if exc.args else str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"env {config.env!r} with env_config {config.env_config}: {exc}") from None
    del env
    return factory


def open_run(run_dir: RunDir, config: EvalConfig | None, *, resume: bool,
             tasks: list[Task] | None = None) -> tuple[EvalConfig, list[Task]]:
    """Create a run directory, or reopen one to resume. A resumed run keeps what it measures
    (env, tasks, policy, samples, seed); only runtime fields may change."""
    if resume:
        if not run_dir.exists:
            raise ConfigError(f"--resume: {run_dir.path} holds no run to resume (no config.json); "
                              "start it without --resume")
        recorded = run_dir.read_config()
        if config is not None:
            diff = config_diff(recorded, config)
            if diff:
                raise ConfigError(f"--resume: the given settings differ from the run's recorded ones "
                                  f"({run_dir.path}/config.json):\n  " + "\n  ".join(diff) +
                                  "\nDrop those flags to resume as recorded, or start a new run with another --out.")
            recorded = recorded.with_runtime_of(config)
            run_dir.write_config(recorded)  # a later plain --resume uses the new endpoint too
        tasks = load_task_file(run_dir.file(TASKS))
        return recorded, tasks
    if config is None:
        raise ConfigError("no eval config given")
    if run_dir.exists or run_dir.file(TRAJECTORIES).exists():
        raise ConfigError(f"{run_dir.path} already holds a run: pass --resume to continue it, "
                          "or choose another --out")
    env_factory(config)  # fail on a bad env name or env config before anything is written
    tasks = tasks if tasks is not None else resolve_tasks(config)
    try:
        run_dir.path.mkdir(parents=True, exist_ok=True)
        run_dir.file(TASKS).touch()
    except OSError as exc:
        raise ConfigError(f"--out {run_dir.path}: cannot write there ({exc.strerror or exc}); choose "
                          "another run directory") from None
    write_task_file(run_dir.file(TASKS), tasks)
    run_dir.write_config(config)
    run_dir.write_manifest(new_manifest(config.seed))
    return config, tasks


def infra_causes(run_dir: RunDir) -> list[tuple[str, int]]:
    """Why episodes could not be scored, most common first: the latest record per episode that
    is an infra error (its error) or whose reward failed (the reward's error)."""
    from collections import Counter

    from traject.eval.summary import latest_per_key

    path = run_dir.file(TRAJECTORIES)
    causes: Counter[str] = Counter()
    for t in latest_per_key(TrajectoryStore.read(path)) if path.exists() else []:
        if t.status is Status.INFRA_ERROR:
            causes[(t.error or "unknown").splitlines()[0][:300]] += 1
        elif t.reward is not None and t.reward.failed:
            causes[f"reward failed: {(t.reward.error or 'unknown').splitlines()[0][:300]}"] += 1
    return causes.most_common()


def summarize_run(run_dir: RunDir, config: EvalConfig, tasks: Sequence[Task]) -> EvalSummary:
    path = run_dir.file(TRAJECTORIES)
    trajs = list(TrajectoryStore.read(path)) if path.exists() else []
    return summarize(trajs, tasks=tasks, samples=config.samples, seed=config.seed, pricing=config.pricing,
                     label=config.label)


def write_results(run_dir: RunDir, config: EvalConfig, tasks: Sequence[Task]) -> EvalResults:
    summary = summarize_run(run_dir, config, tasks)
    results = EvalResults(config=config, summary=summary, complete=summary.counts.missing == 0,
                          written_at=now())
    run_dir.write_results(results, summary_markdown(results))
    return results


async def close_policy(policy: Policy) -> None:
    """Release a policy's connections (``aclose()``, or its HTTP client's ``close()``)."""
    closer = getattr(policy, "aclose", None) or getattr(getattr(policy, "client", None), "close", None)
    if closer is None:
        return
    try:
        result = closer()
        if hasattr(result, "__await__"):
            await result
    except Exception:  # noqa: BLE001 - closing is best effort
        pass


async def check_policy(policy: Policy) -> None:
    """One request to the policy's endpoint, where it has one (``check()``): a clear error
    before anything runs, instead of every episode failing the same way."""
    check = getattr(policy, "check", None)
    if check is not None:
        await check()


async def run_eval(config: EvalConfig | None, out: str | Path, *, resume: bool = False,
                   progress: ProgressSink | None = None, policy: Policy | None = None,
                   argv: Sequence[str] | None = None, check_endpoint: bool = False) -> EvalResults:
    """Run (or resume) an eval into ``out`` and return its results. ``policy`` overrides the
    config's policy (for library users holding a policy object). ``check_endpoint``: first send
    the policy's endpoint one request (``PolicyError`` if it fails; nothing is written)."""
    run_dir = RunDir(out)
    own_policy = policy is None
    if policy is None and config is not None and not resume:
        policy = make_policy(config.policy)  # a bad policy fails before the run directory is made
    try:
        tasks = None
        if check_endpoint and policy is not None:
            if config is not None and not resume:
                # Bad input (env, tasks) is reported before the endpoint is tried.
                env_factory(config)
                tasks = resolve_tasks(config)
            await check_policy(policy)
        config, tasks = open_run(run_dir, config, resume=resume, tasks=tasks)
        factory = env_factory(config)
        if policy is None:
            policy = make_policy(config.policy)
            if check_endpoint:
                await check_policy(policy)
    except BaseException:
        if own_policy and policy is not None:
            with anyio.CancelScope(shield=True):
                await close_policy(policy)
        raise
    manifest = run_dir.read_manifest() or new_manifest(config.seed)
    invocation = Invocation(started_at=now(), resumed=resume, argv=list(argv if argv is not None else sys.argv))
    manifest.invocations.append(invocation)
    run_dir.write_manifest(manifest)

    store = TrajectoryStore(run_dir.file(TRAJECTORIES))
    new = 0

    def on_trajectory(traj: Trajectory) -> None:
        nonlocal new
        new += 1
        if progress is not None:
            progress.advance(traj)

    rollouts = Rollouts(policy, factory, group_size=config.samples, concurrency=config.concurrency,
                        episode_timeout_s=config.episode_timeout_s, store=store, seed=config.seed,
                        retry_infra=config.retry_infra, on_trajectory=on_trajectory)
    try:
        if progress is not None:
            todo = rollouts.pending(tasks)
            progress.start(total=len(tasks) * config.samples, done=len(tasks) * config.samples - len(todo))
        await rollouts.run(tasks)
        invocation.outcome = "completed"
    except anyio.get_cancelled_exc_class():
        invocation.outcome = "interrupted"
        raise
    except BaseException as exc:
        invocation.outcome = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        invocation.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if own_policy:
            with anyio.CancelScope(shield=True):
                await close_policy(policy)
        # Synchronous on purpose: this runs also while the run is being cancelled.
        store.close()
        invocation.finished_at = now()
        invocation.new_trajectories = new
        run_dir.write_manifest(manifest)
        results = write_results(run_dir, config, tasks)
    return results
