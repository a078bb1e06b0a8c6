"""Registers ``swe``: built-in seeded-bug repositories, or a SWE-bench file with
``tasks(path=..., repos_dir=...)``."""

from __future__ import annotations

from typing import Any

from traject.environments.registry import register_env
from traject.environments.swe.builtin import builtin_swe_tasks
from traject.environments.swe.env import SweEnv
from traject.environments.swe.loader import load_swebench
from traject.types import Task


def make_swe_env(**config: Any) -> SweEnv:
    return SweEnv(**config)


def swe_tasks(split: str = "test", n: int | None = None, seed: int = 0, path: str | None = None,
              names: list[str] | None = None, repos_dir: str | None = None, specs: Any = None,
              instance_ids: list[str] | None = None) -> list[Task]:
    if path is not None:
        return load_swebench(path, repos_dir=repos_dir, specs=specs, instance_ids=instance_ids, n=n)
    return builtin_swe_tasks(split=split, n=n, seed=seed, names=names)


register_env("swe", make_swe_env, tasks=swe_tasks, task_data="traject.environments.swe.task:SweTaskData",
             description="Repositories in Docker: bash, file editor and submit; SWE-bench tests as reward (G-RA).")
