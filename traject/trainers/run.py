"""``traject train``: a config file in, a trained policy out, on the backend the config names.

Backends register a runner here (``local`` is built in; ``traject.trainers.verl`` registers
``verl`` when imported). A runner takes the validated :class:`TrainConfig` and returns whatever
summary it has.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from traject.trainers.config import ConfigError, TrainConfig, load_config

Runner = Callable[[TrainConfig, Callable[[str], None]], Any]
_RUNNERS: dict[str, Runner] = {}


def register_backend(name: str, runner: Runner) -> None:
    _RUNNERS[name] = runner


def _run_local(config: TrainConfig, log_fn: Callable[[str], None]) -> Any:
    from traject.trainers.local import LocalTrainer

    return LocalTrainer(config, log_fn=log_fn).run()


register_backend("local", _run_local)


def runner_for(backend: str) -> Runner:
    if backend not in _RUNNERS:
        try:
            importlib.import_module(f"traject.trainers.{backend}")
        except ImportError as exc:
            raise ConfigError(f"backend {backend!r} is not available: {exc}. Fix: install its extra "
                              f"(pip install 'traject[{backend}]') or use --backend local.") from None
    if backend not in _RUNNERS:
        raise ConfigError(f"backend {backend!r} registers no runner; known: {', '.join(sorted(_RUNNERS))}")
    return _RUNNERS[backend]


def train(path: str | Path, overrides: list[str] | None = None, *, backend: str | None = None,
          log_fn: Callable[[str], None] = print) -> Any:
    """Load, validate and run a training config (``backend`` overrides the config's)."""
    config = load_config(path, overrides, backend=backend)
    check_env(config, str(path))  # before any weights are loaded or a run directory is written
    return runner_for(config.backend)(config, log_fn)


def check_env(config: TrainConfig, source: str) -> None:
    from traject.environments.registry import registry

    try:
        registry.get(config.env.name)
    except KeyError as exc:
        raise ConfigError(f"{source}: field 'env.name': {exc.args[0]}. Fix: name a registered env "
                          "(`traject envs`) or MODULE:ENTRY.") from None
