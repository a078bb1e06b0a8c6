"""The run directory: everything needed to resume, reproduce and report one eval run.

::

    RUN/
      config.json         the EvalConfig (no secrets: API keys are named by env var only)
      tasks.jsonl         the exact tasks, so a resumed run sees the same ones
      manifest.json       versions, seeds, host, and every invocation (started, resumed, interrupted)
      trajectories.jsonl  the TrajectoryStore (one record per finished episode)
      results.json        the EvalConfig and EvalSummary
      summary.md          the same, for people
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from traject.eval.config import ConfigError, EvalConfig, format_validation_error
from traject.eval.summary import EvalSummary

CONFIG = "config.json"
TASKS = "tasks.jsonl"
MANIFEST = "manifest.json"
TRAJECTORIES = "trajectories.jsonl"
RESULTS = "results.json"
SUMMARY = "summary.md"

_PACKAGES = ("pydantic", "anyio", "openai", "httpx", "numpy", "transformers", "torch")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Invocation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    started_at: str
    finished_at: str | None = None
    outcome: Literal["running", "completed", "interrupted", "failed"] = "running"
    resumed: bool = False
    argv: list[str] = Field(default_factory=list)
    new_trajectories: int = 0
    error: str | None = None


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    created_at: str
    traject_version: str
    python: str
    platform: str
    packages: dict[str, str] = Field(default_factory=dict)
    git_commit: str | None = None
    seed: int
    seed_rule: str = ("episode seed = blake2b(seed, task_id, sample_index, attempt) >> 1 "
                      "(traject.episode.episode_seed); recorded on each trajectory")
    invocations: list[Invocation] = Field(default_factory=list)


class EvalResults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: EvalConfig
    summary: EvalSummary
    complete: bool
    written_at: str


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def new_manifest(seed: int) -> Manifest:
    import traject

    packages = {}
    for name in _PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            continue
    return Manifest(created_at=now(), traject_version=traject.__version__, python=sys.version.split()[0],
                    platform=platform.platform(), packages=packages, git_commit=_git_commit(), seed=seed)


def write_json_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def exists(self) -> bool:
        return self.file(CONFIG).exists()

    def read_config(self) -> EvalConfig:
        path = self.file(CONFIG)
        try:
            return EvalConfig.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            raise ConfigError(f"{self.path} is not a traject eval run: it has no {CONFIG}") from None
        except ValidationError as err:
            raise ConfigError(format_validation_error(err, str(path))) from None

    def write_config(self, config: EvalConfig) -> None:
        write_json_atomic(self.file(CONFIG), config.model_dump_json(indent=2))

    def read_manifest(self) -> Manifest | None:
        path = self.file(MANIFEST)
        if not path.exists():
            return None
        return Manifest.model_validate_json(path.read_bytes())

    def write_manifest(self, manifest: Manifest) -> None:
        write_json_atomic(self.file(MANIFEST), manifest.model_dump_json(indent=2))

    def read_results(self) -> EvalResults | None:
        path = self.file(RESULTS)
        if not path.exists():
            return None
        try:
            return EvalResults.model_validate_json(path.read_bytes())
        except ValidationError as err:
            raise ConfigError(format_validation_error(err, str(path))) from None

    def write_results(self, results: EvalResults, markdown: str) -> None:
        write_json_atomic(self.file(RESULTS), results.model_dump_json(indent=2))
        write_json_atomic(self.file(SUMMARY), markdown)


def config_diff(recorded: EvalConfig, given: EvalConfig) -> list[str]:
    """The fields that define what a run measures and that differ between two configs."""
    a, b = recorded.identity(), given.identity()
    out: list[str] = []

    def walk(x: object, y: object, path: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                walk(x.get(k), y.get(k), f"{path}.{k}" if path else k)
        elif x != y:
            out.append(f"{path}: recorded {json.dumps(x)}, given {json.dumps(y)}")

    walk(a, b, "")
    return out
