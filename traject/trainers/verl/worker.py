"""What one veRL agent-loop worker process holds across trajectories.

veRL makes a new agent-loop instance for every trajectory, but runs many of them in one
long-lived worker process (a Ray actor). Whatever is costly to set up (an env's sandbox pool,
a database handle, a search index, a trajectory store) lives here, once per process, and is
reused by every trajectory the process runs.

Envs are pooled: an Env runs one episode at a time and ``reset`` starts the next, so an env
whose episode ended cleanly goes back to the pool with everything it built in its constructor;
one whose episode hit an infra error is dropped.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from traject.environments.base import Env
from traject.environments.registry import make as make_env


def _key(name: str, config: dict[str, Any]) -> str:
    return name + "\0" + json.dumps(config, sort_keys=True, default=str)


class WorkerState:
    def __init__(self) -> None:
        self._idle: dict[str, list[Env]] = defaultdict(list)
        self._made: dict[str, int] = defaultdict(int)
        self._stores: dict[str, Any] = {}

    def acquire(self, name: str, config: dict[str, Any]) -> Env:
        key = _key(name, config)
        if self._idle[key]:
            return self._idle[key].pop()
        self._made[key] += 1
        return make_env(name, **config)

    def release(self, name: str, config: dict[str, Any], env: Env, *, healthy: bool) -> None:
        if healthy:
            self._idle[_key(name, config)].append(env)

    def envs_made(self, name: str, config: dict[str, Any]) -> int:
        return self._made[_key(name, config)]

    def store(self, directory: str) -> Any:
        """This process's trajectory store under ``directory`` (one JSONL file per process)."""
        from traject.agents.store import TrajectoryStore

        if directory not in self._stores:
            self._stores[directory] = TrajectoryStore(Path(directory) / f"trajectories-{os.getpid()}.jsonl")
        return self._stores[directory]


_state: WorkerState | None = None
_state_pid: int | None = None


def worker_state() -> WorkerState:
    """The state of this process (a forked child gets its own)."""
    global _state, _state_pid
    if _state is None or _state_pid != os.getpid():
        _state, _state_pid = WorkerState(), os.getpid()
    return _state
