"""The training config that ``traject train --backend verl`` reads.

It speaks traject's vocabulary (model, env, algorithm, group size, lengths, learning rate, KL);
the launcher maps it onto ``verl.trainer.main_ppo``'s hydra config. Anything traject does not
name passes through verbatim in ``verl.overrides``.

>>> cfg = TrainConfig.model_validate({"model": "Qwen/Qwen2.5-0.5B-Instruct", "env": "lookup"})
>>> cfg.algorithm, cfg.group_size, cfg.verl.rollout
('grpo', 8, 'vllm')
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator

Algorithm = Literal["grpo", "rloo", "reinforce_plus_plus", "ppo"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskSource(_Model):
    """Where tasks come from: a JSONL file of traject Tasks (``path``), or the env's own
    task source (``traject.load_tasks(env, split=..., n=..., seed=..., **options)``)."""

    path: Path | None = None
    split: str = "train"
    n: int | None = None
    seed: int = 0
    options: dict[str, JsonValue] = Field(default_factory=dict)


class VerlOptions(_Model):
    """Settings that only exist on the veRL side."""

    strategy: Literal["fsdp", "megatron"] = "fsdp"
    rollout: Literal["vllm", "sglang"] = "vllm"
    nnodes: int = Field(1, ge=1)
    gpus_per_node: int = Field(1, ge=1)
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float = Field(0.5, gt=0, le=1)
    #: Prompts per PPO mini-batch; defaults to ``batch_size`` (one update per step).
    ppo_mini_batch_size: int | None = Field(None, ge=1)
    micro_batch_size_per_gpu: int = Field(1, ge=1)
    #: Agent-loop worker processes (Ray actors) that run episodes.
    agent_workers: int = Field(8, ge=1)
    #: veRL's V1 trainer (TransferQueue); False selects the legacy ``main_ppo_v0`` trainer.
    use_v1: bool = True
    logger: list[str] = Field(default_factory=lambda: ["console"])
    project: str = "traject"
    experiment: str | None = None
    #: Raw hydra overrides, appended last so that they win: ``["trainer.save_freq=10"]``.
    overrides: list[str] = Field(default_factory=list)


class TrainConfig(_Model):
    model: str
    env: str
    env_config: dict[str, JsonValue] = Field(default_factory=dict)
    tasks: TaskSource = Field(default_factory=TaskSource)
    val_tasks: TaskSource | None = None
    algorithm: Algorithm = "grpo"
    group_size: int = Field(8, ge=1)
    #: Prompts (tasks) per training step; each is sampled ``group_size`` times.
    batch_size: int = Field(16, ge=1)
    max_prompt_length: int = Field(1024, ge=16)
    max_response_length: int = Field(2048, ge=16)
    lr: float = Field(1e-6, gt=0)
    #: KL coefficient against the reference model; 0 turns the reference model off.
    kl_coef: float = Field(0.0, ge=0)
    kl_mode: Literal["loss", "reward"] = "loss"
    temperature: float = Field(1.0, ge=0)
    epochs: int = Field(1, ge=1)
    total_steps: int | None = Field(None, ge=1)
    save_every: int = -1
    val_every: int = -1
    episode_timeout_s: float | None = Field(None, gt=0)
    max_steps: int = Field(1000, ge=1)
    seed: int = 0
    output_dir: Path = Path("runs/verl")
    verl: VerlOptions = Field(default_factory=VerlOptions)

    @model_validator(mode="after")
    def _batches(self) -> TrainConfig:
        mini = self.verl.ppo_mini_batch_size
        if mini is not None and self.batch_size % mini != 0:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of "
                             f"verl.ppo_mini_batch_size ({mini})")
        if self.algorithm in ("grpo", "rloo") and self.group_size < 2:
            raise ValueError(f"{self.algorithm} compares samples of one task: set group_size >= 2")
        return self


class ConfigFileError(ValueError):
    """A config file that cannot be used; the message names the file, the field and the fix."""


def load_train_config(path: str | Path, **overrides: Any) -> TrainConfig:
    """Read a YAML (or JSON) training config; ``overrides`` replace top-level fields."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot read the config file: {exc.strerror}") from exc
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigFileError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigFileError(f"{path}: the top level must be a mapping with at least `model` and `env`")
    raw.update(overrides)
    try:
        cfg = TrainConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigFileError(_explain(path, exc)) from exc
    return _resolve_paths(cfg, path.parent)


def _explain(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: {exc.error_count()} problem(s) in the training config:"]
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            fix = "remove it (raw veRL settings go under `verl.overrides`)"
        elif err["type"] == "missing":
            fix = "add it"
        else:
            fix = "change it"
        lines.append(f"  field `{field}`: {err['msg']}; {fix}")
    return "\n".join(lines)


def _resolve_paths(cfg: TrainConfig, base: Path) -> TrainConfig:
    """Task files named relative to the config file are found next to it."""
    def fix(src: TaskSource | None) -> TaskSource | None:
        if src is None or src.path is None or src.path.is_absolute():
            return src
        return src.model_copy(update={"path": (base / src.path).resolve()})

    return cfg.model_copy(update={"tasks": fix(cfg.tasks), "val_tasks": fix(cfg.val_tasks)})
