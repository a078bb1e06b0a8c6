"""``traject train --backend verl``: export the tasks, register the agent loop, and start
``python -m verl.trainer.main_ppo`` with hydra overrides mapped from traject's config.

veRL needs CUDA GPUs: on a machine without one, ``main_ppo`` would wait forever for a GPU
placement group, so the launcher refuses at once instead. ``--dry-run`` prepares the files and
prints the full command without starting anything.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from traject.trainers.verl.config import TaskSource, TrainConfig
from traject.trainers.verl.dataset import DEFAULT_AGENT_NAME, export_tasks, read_tasks_jsonl
from traject.trainers.verl.registration import AgentLoopSettings, write_agent_loop_config
from traject.types import Task

ADV_ESTIMATOR = {"grpo": "grpo", "rloo": "rloo", "reinforce_plus_plus": "reinforce_plus_plus", "ppo": "gae"}
MAIN_MODULE = "verl.trainer.main_ppo"
SETUP_HOOK = "traject.trainers.verl.advantage.register"


class NoCudaGPU(RuntimeError):
    """veRL cannot train here: no CUDA GPU is visible."""


@dataclass(frozen=True)
class LaunchFiles:
    train_file: Path
    val_file: Path | None
    agent_loop_config: Path


@dataclass(frozen=True)
class LaunchPlan:
    files: LaunchFiles
    overrides: list[str]
    command: list[str]

    def shell(self) -> str:
        return shlex.join(self.command)


def _value(v: object) -> str:
    """A hydra override value: booleans and None in hydra's spelling, strings quoted when the
    override grammar would otherwise read them as something else."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_value(x) for x in v) + "]"
    s = str(v)
    if s == "" or any(c in s for c in " ,=[]{}()'\"\\:$*?") or s.lower() in ("true", "false", "null"):
        return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return s


def hydra_overrides(cfg: TrainConfig, files: LaunchFiles) -> list[str]:
    """traject's config as ``main_ppo`` overrides, then ``cfg.verl.overrides`` verbatim."""
    v = cfg.verl
    mini = v.ppo_mini_batch_size or cfg.batch_size
    use_ref = cfg.kl_coef > 0
    o: dict[str, object] = {}
    if v.strategy == "megatron":
        o["model_engine"] = "megatron"
    adv = ADV_ESTIMATOR[cfg.algorithm]
    if adv == "grpo" and not v.use_v1:
        # The legacy worker returns masked-out rows for untrainable trajectories; traject_grpo
        # keeps them out of the group baseline. It is registered in every Ray worker process.
        o["+ray_kwargs.ray_init.runtime_env.worker_process_setup_hook"] = SETUP_HOOK
        adv = "traject_grpo"
    o |= {
        "algorithm.adv_estimator": adv,
        "data.train_files": str(files.train_file),
        "data.val_files": str(files.val_file or files.train_file),
        "data.train_batch_size": cfg.batch_size,
        "data.max_prompt_length": cfg.max_prompt_length,
        "data.max_response_length": cfg.max_response_length,
        # The env renders the real prompt (system prompt, tools) at run time, so veRL's length
        # filter over the raw prompt column would measure the wrong thing.
        "data.filter_overlong_prompts": False,
        "data.seed": cfg.seed,
        "actor_rollout_ref.model.path": cfg.model,
        "actor_rollout_ref.actor.optim.lr": cfg.lr,
        "actor_rollout_ref.actor.ppo_mini_batch_size": mini,
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": v.micro_batch_size_per_gpu,
        "actor_rollout_ref.actor.use_kl_loss": use_ref and cfg.kl_mode == "loss",
        "algorithm.use_kl_in_reward": use_ref and cfg.kl_mode == "reward",
    }
    if use_ref and cfg.kl_mode == "loss":
        o["actor_rollout_ref.actor.kl_loss_coef"] = cfg.kl_coef
        o["actor_rollout_ref.actor.kl_loss_type"] = "low_var_kl"
    if use_ref and cfg.kl_mode == "reward":
        o["algorithm.kl_ctrl.kl_coef"] = cfg.kl_coef
    if use_ref:
        o["actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu"] = v.micro_batch_size_per_gpu
    o |= {
        "actor_rollout_ref.rollout.name": v.rollout,
        "actor_rollout_ref.rollout.mode": "async",
        "actor_rollout_ref.rollout.n": cfg.group_size,
        "actor_rollout_ref.rollout.temperature": cfg.temperature,
        "actor_rollout_ref.rollout.calculate_log_probs": True,
        "actor_rollout_ref.rollout.tensor_model_parallel_size": v.tensor_parallel_size,
        "actor_rollout_ref.rollout.gpu_memory_utilization": v.gpu_memory_utilization,
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu": v.micro_batch_size_per_gpu,
        "actor_rollout_ref.rollout.agent.agent_loop_config_path": str(files.agent_loop_config),
        "actor_rollout_ref.rollout.agent.default_agent_loop": DEFAULT_AGENT_NAME,
        "actor_rollout_ref.rollout.agent.num_workers": v.agent_workers,
    }
    o["critic.enable"] = cfg.algorithm == "ppo"
    if cfg.algorithm == "ppo":
        o["critic.model.path"] = cfg.model
        o["critic.ppo_micro_batch_size_per_gpu"] = v.micro_batch_size_per_gpu
    o |= {
        "trainer.use_v1": v.use_v1,
        "trainer.n_gpus_per_node": v.gpus_per_node,
        "trainer.nnodes": v.nnodes,
        "trainer.total_epochs": cfg.epochs,
        "trainer.save_freq": cfg.save_every,
        "trainer.test_freq": cfg.val_every if files.val_file else -1,
        "trainer.val_before_train": files.val_file is not None,
        "trainer.default_local_dir": str(cfg.output_dir / "checkpoints"),
        "trainer.project_name": v.project,
        "trainer.experiment_name": v.experiment or f"{cfg.env}-{cfg.algorithm}",
        "trainer.logger": v.logger,
    }
    if cfg.total_steps is not None:
        o["trainer.total_training_steps"] = cfg.total_steps
    return [f"{k}={_value(val)}" for k, val in o.items()] + list(v.overrides)


def load_task_source(env: str, source: TaskSource) -> list[Task]:
    if source.path is not None:
        tasks = read_tasks_jsonl(source.path)
        return tasks[: source.n] if source.n is not None else tasks
    from traject.environments.registry import load_tasks

    options: dict[str, object] = {"split": source.split, "seed": source.seed, **source.options}
    if source.n is not None:
        options["n"] = source.n
    return load_tasks(env, **options)


def prepare(cfg: TrainConfig, *, workdir: Path | None = None) -> LaunchFiles:
    """Export the train (and validation) tasks as parquet and write the agent-loop YAML."""
    workdir = Path(workdir or cfg.output_dir / "verl").resolve()
    train = export_tasks(load_task_source(cfg.env, cfg.tasks), workdir / "train.parquet",
                         env=cfg.env, split=cfg.tasks.split)
    val = None
    if cfg.val_tasks is not None:
        val = export_tasks(load_task_source(cfg.env, cfg.val_tasks), workdir / "val.parquet",
                           env=cfg.env, split=cfg.val_tasks.split)
    settings = AgentLoopSettings(env=cfg.env, env_configs={cfg.env: dict(cfg.env_config)},
                                 episode_timeout_s=cfg.episode_timeout_s, max_steps=cfg.max_steps,
                                 seed=cfg.seed, store_dir=str(Path(cfg.output_dir, "trajectories").resolve()))
    agent_yaml = write_agent_loop_config(workdir / "agent_loops.yaml", settings)
    return LaunchFiles(train, val, agent_yaml)


def plan(cfg: TrainConfig, *, workdir: Path | None = None, extra_overrides: list[str] = (),
         python: str | None = None) -> LaunchPlan:
    files = prepare(cfg, workdir=workdir)
    overrides = hydra_overrides(cfg, files) + list(extra_overrides)
    return LaunchPlan(files, overrides, [python or sys.executable, "-m", MAIN_MODULE, *overrides])


def check_cuda(cfg: TrainConfig) -> int:
    """Return the number of visible CUDA GPUs, or raise NoCudaGPU saying what to do instead."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a core dependency
        raise NoCudaGPU(f"veRL training needs torch with CUDA; torch is not importable: {exc}") from exc
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        where = f"CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else "no CUDA device"
        raise NoCudaGPU(
            f"veRL training needs CUDA GPUs, and none is visible here (torch {torch.__version__}, "
            f"{where}). veRL would wait forever for a GPU placement group, so nothing was started. "
            "On a CPU machine use `traject train --backend local`; to see the veRL command without "
            "running it, add --dry-run.")
    if count < cfg.verl.gpus_per_node:
        raise NoCudaGPU(f"verl.gpus_per_node is {cfg.verl.gpus_per_node} but only {count} CUDA GPU(s) "
                        "are visible on this node: lower verl.gpus_per_node or expose more GPUs")
    return count


def launch(cfg: TrainConfig, *, dry_run: bool = False, extra_overrides: list[str] = (),
           workdir: Path | None = None) -> int:
    """Run veRL (or, with ``dry_run``, only print its command); return the exit status."""
    if not dry_run:
        check_cuda(cfg)
        from traject.trainers.verl._require import require_verl

        require_verl("verl.trainer.main_ppo")
    p = plan(cfg, workdir=workdir, extra_overrides=extra_overrides)
    if dry_run:
        print(p.shell())
        return 0
    return subprocess.call(p.command)


def run_cli(config_path: str | Path, *, dry_run: bool = False, overrides: list[str] = ()) -> int:
    """``traject train --backend verl``: errors become one clear message and exit status 2."""
    from traject.trainers.verl._require import VerlMissing
    from traject.trainers.verl.config import ConfigFileError, load_train_config

    try:
        cfg = load_train_config(config_path)
        return launch(cfg, dry_run=dry_run, extra_overrides=list(overrides))
    except (ConfigFileError, NoCudaGPU, VerlMissing) as exc:
        print(f"traject train --backend verl: {exc}", file=sys.stderr)
        return 2
