"""The ``verl:`` section of traject's one TrainConfig, and what the veRL engine cannot honour.

A config trains on veRL with ``backend: verl`` (or ``traject train CONFIG --backend verl``):
the shared sections (model, algorithm, rollout, env, eval, optim, trainer, sft) mean the same
on both engines, and the launcher maps them onto ``verl.trainer.main_ppo``'s hydra config.
This section holds only what exists on veRL's side (placement, rollout engine, parallelism),
and ``overrides`` passes raw hydra overrides through verbatim, last, so that they win.

A shared setting veRL cannot honour is refused by :func:`verl_problems` (one line naming the
field and the engine that supports it), never silently dropped. Only settings the user wrote
count: a default the veRL engine does not use (``trainer.threads``, say) is not an error.

>>> from traject.trainers.config import config_from_dict
>>> cfg = config_from_dict({"backend": "verl", "model": {"path": "Qwen/Qwen2.5-0.5B-Instruct"},
...                         "verl": {"gpus_per_node": 8}})
>>> verl_section(cfg).gpus_per_node, verl_section(cfg).rollout
(8, 'vllm')
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from traject.trainers.config import TrainConfig, explicitly_set, register_backend_section

__all__ = ["VerlConfig", "prompt_and_response_lengths", "verl_problems", "verl_section"]


class VerlConfig(BaseModel):
    """Settings that only exist on the veRL side."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    strategy: Literal["fsdp", "megatron"] = "fsdp"
    rollout: Literal["vllm", "sglang"] = "vllm"
    nnodes: int = Field(1, ge=1)
    gpus_per_node: int = Field(1, ge=1)
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float = Field(0.5, gt=0, le=1)
    micro_batch_size_per_gpu: int = Field(1, ge=1)
    #: Agent-loop worker processes (Ray actors) that run episodes.
    agent_workers: int = Field(8, ge=1)
    #: The prompt's share of ``model.max_seq_len`` (veRL pads prompts and responses separately);
    #: the response gets the rest. Default: half, at most 1024.
    max_prompt_length: int | None = Field(None, ge=16)
    #: veRL's V1 trainer (TransferQueue); False selects the legacy ``main_ppo_v0`` trainer.
    use_v1: bool = True
    #: KL to the reference as a loss term (traject's way, and the local engine's) or in the reward.
    kl_mode: Literal["loss", "reward"] = "loss"
    #: Reward-loop workers; a GroupReward needs every sample of a task in one, so it forces 1.
    reward_workers: int = Field(8, ge=1)
    #: How long a group reward waits for a task's G samples before scoring those that came.
    group_timeout_s: float = Field(600.0, gt=0)
    logger: list[str] = Field(default_factory=lambda: ["console"])
    project: str = "traject"
    experiment: str | None = None
    #: Raw hydra overrides, appended last so that they win: ``["trainer.save_freq=10"]``.
    overrides: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _placement(self) -> VerlConfig:
        if self.gpus_per_node % self.tensor_parallel_size:
            raise ValueError(f"gpus_per_node ({self.gpus_per_node}) must be a multiple of "
                             f"tensor_parallel_size ({self.tensor_parallel_size})")
        return self


def verl_section(cfg: TrainConfig) -> VerlConfig:
    section = cfg.section("verl")
    return section if isinstance(section, VerlConfig) else VerlConfig()


def prompt_and_response_lengths(cfg: TrainConfig) -> tuple[int, int]:
    """veRL's ``data.max_prompt_length`` and ``data.max_response_length`` from ``model.max_seq_len``."""
    total = cfg.model.max_seq_len
    prompt = verl_section(cfg).max_prompt_length or min(1024, total // 2)
    return prompt, total - prompt


LOCAL = "the local engine (backend: local)"


def verl_problems(cfg: TrainConfig) -> list[tuple[str, str, str]]:
    """(field, reason, fix) for each shared setting the veRL engine cannot honour."""
    out: list[tuple[str, str, str]] = []

    def local_only(section, name: str, what: str, fix: str = "") -> None:
        if explicitly_set(section, name):
            out.append((name_of(section, name), f"{what}; only {LOCAL} has it",
                        fix or f"remove it, or train with backend: local"))

    def name_of(section, name: str) -> str:
        for sec in ("model", "algorithm", "rollout", "env", "eval", "optim", "trainer", "sft"):
            if getattr(cfg, sec) is section:
                return f"{sec}.{name}"
        return name

    m, a, r, o, t = cfg.model, cfg.algorithm, cfg.rollout, cfg.optim, cfg.trainer
    local_only(m, "device", "veRL places the model on its GPUs itself", "remove it; set verl.gpus_per_node")
    local_only(m, "dtype", "veRL trains with FSDP/Megatron mixed precision",
               "remove it; set veRL's precision in verl.overrides")
    local_only(r, "concurrency", "veRL runs a whole batch's episodes at once (verl.agent_workers processes)",
               "remove it; set verl.agent_workers")
    local_only(r, "ray", "veRL places its own agent workers on its Ray cluster")
    local_only(r, "serve_host", "veRL's agent workers reach its own rollout servers")
    local_only(a, "skip_zero_advantage", "veRL keeps zero-advantage rows in the batch")
    local_only(t, "threads", "torch intra-op threads of the one local process")
    local_only(o, "eps", "veRL's AdamW takes no eps setting")
    if a.old_logprobs == "sampler":
        out.append(("algorithm.old_logprobs", f"sampler (PPO's pi_old from the sampler's logprobs) is {LOCAL}'s; "
                    "veRL recomputes pi_old", "set algorithm.old_logprobs: recompute (or auto)"))
    if o.schedule == "linear":
        out.append(("optim.schedule", f"linear decay is {LOCAL}'s; veRL has constant and cosine",
                    "set optim.schedule: constant or cosine"))
    if r.tasks_per_step % a.mini_batches:
        out.append(("algorithm.mini_batches", f"veRL splits the step's {r.tasks_per_step} tasks into mini-batches "
                    "of whole tasks", f"set algorithm.mini_batches to a divisor of rollout.tasks_per_step"))
    if a.advantage == "turn" and t.mode == "fully_async":
        out.append(("algorithm.advantage", "turn puts per-turn scores on each turn's tokens, which traject "
                    "wires into veRL's sync and one_step_off trainers only", "use trainer.mode: sync or one_step_off"))
    return out


register_backend_section("verl", VerlConfig, verl_problems)
