"""The veRL engine's runner: traject's TrainConfig in, ``verl.trainer.main_ppo`` (or one of
veRL's asynchronous trainers) started with hydra overrides mapped from it.

The shared sections map onto veRL's config (see :func:`hydra_overrides`); traject's advantage
estimators and policy loss run inside veRL under ``traject_*`` names (registered in every Ray
worker process through Ray's ``worker_process_setup_hook``, with the algorithm settings in
the ``TRAJECT_ALGORITHM`` environment variable); a ``GroupReward`` is scored by the
``traject_group`` reward manager.

veRL needs CUDA GPUs: on a machine without one ``main_ppo`` would wait forever for a GPU
placement group, so the launcher refuses at once instead. ``--dry-run`` prepares the files and
prints the full command without starting anything.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traject.trainers.config import ConfigError, TrainConfig, load_config
from traject.trainers.run import register_backend
from traject.trainers.verl.algorithms import ALGORITHM_ENV
from traject.trainers.verl.config import prompt_and_response_lengths, verl_section
from traject.trainers.verl.dataset import DEFAULT_AGENT_NAME, export_tasks, read_tasks_jsonl
from traject.trainers.verl.registration import AgentLoopSettings, write_agent_loop_config
from traject.types import Task

#: traject's estimator name -> the name it has in veRL's registry. gae is veRL's own (it needs
#: the critic's values, which veRL hands only to its built-in gae).
ADV_ESTIMATOR = {"grpo": "traject_grpo", "dr_grpo": "traject_dr_grpo", "rloo": "traject_rloo",
                 "reinforce_pp": "traject_reinforce_pp", "turn": "traject_turn", "gae": "gae"}
POLICY_LOSS = {"ppo_clip": "traject_ppo_clip"}
SETUP_HOOK = "traject.trainers.verl.algorithms.register"
GROUP_REWARD_MANAGER = "traject_group"

#: trainer.mode -> (module to run, its hydra config name, the config directory inside verl).
MODES = {
    "sync": ("verl.trainer.main_ppo", "ppo_trainer", "trainer/config"),
    "one_step_off": ("verl.experimental.one_step_off_policy.main_ppo", "one_step_off_ppo_trainer",
                     "experimental/one_step_off_policy/config"),
    "fully_async": ("verl.experimental.fully_async_policy.fully_async_main", "fully_async_ppo_trainer",
                    "experimental/fully_async_policy/config"),
}
MAIN_MODULE = MODES["sync"][0]
KL_KIND = {"k1": "k1", "k2": "k2", "k3": "low_var_kl"}


class NoCudaGPU(RuntimeError):
    """veRL cannot train here: no CUDA GPU is visible."""


@dataclass(frozen=True)
class LaunchFiles:
    train_file: Path
    val_file: Path | None
    agent_loop_config: Path
    model_path: Path | str
    tokenizer_path: Path | None = None


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


def out_dir(cfg: TrainConfig) -> Path:
    return Path(cfg.trainer.out_dir).resolve()


def mini_batch_size(cfg: TrainConfig) -> int:
    """Tasks per PPO mini-batch: the step's tasks split into ``algorithm.mini_batches``."""
    return max(1, cfg.rollout.tasks_per_step // cfg.algorithm.mini_batches)


def hydra_overrides(cfg: TrainConfig, files: LaunchFiles) -> list[str]:
    """The shared sections as veRL hydra overrides, then ``verl.overrides`` verbatim."""
    v = verl_section(cfg)
    a, r, o, t, e, m = cfg.algorithm, cfg.rollout, cfg.optim, cfg.trainer, cfg.eval, cfg.model
    prompt_len, response_len = prompt_and_response_lengths(cfg)
    use_ref = a.kl_coef > 0 or a.track_ref_kl
    kl_in_loss = use_ref and v.kl_mode == "loss"
    sync = t.mode == "sync"
    o_: dict[str, object] = {}
    if v.strategy == "megatron":
        o_["model_engine"] = "megatron"
    if t.mode == "one_step_off":
        # its config names verl's base config by a path relative to verl's source tree
        o_["hydra.searchpath"] = ["pkg://verl.trainer.config"]
    o_ |= {
        # traject's estimators and loss, registered in every Ray worker process
        "+ray_kwargs.ray_init.runtime_env.worker_process_setup_hook": SETUP_HOOK,
        f"+ray_kwargs.ray_init.runtime_env.env_vars.{ALGORITHM_ENV}": a.model_dump_json(),
        "algorithm.adv_estimator": ADV_ESTIMATOR[a.advantage],
        "algorithm.norm_adv_by_std_in_grpo": a.divide_by_std,
        "actor_rollout_ref.actor.policy_loss.loss_mode": POLICY_LOSS[a.policy_loss],
        "actor_rollout_ref.actor.clip_ratio_low": a.clip_low,
        "actor_rollout_ref.actor.clip_ratio_high": a.clip_high,
        "actor_rollout_ref.actor.loss_agg_mode": a.loss_agg,
        "actor_rollout_ref.actor.entropy_coeff": a.entropy_coef,
        "actor_rollout_ref.actor.ppo_epochs": a.ppo_epochs,
        "actor_rollout_ref.actor.ppo_mini_batch_size": mini_batch_size(cfg),
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": o.micro_batch_seqs or v.micro_batch_size_per_gpu,
        "actor_rollout_ref.actor.use_kl_loss": kl_in_loss,
        "algorithm.use_kl_in_reward": use_ref and v.kl_mode == "reward",
    }
    if a.dual_clip is not None:
        o_["actor_rollout_ref.actor.clip_ratio_c"] = a.dual_clip
    if a.loss_norm_length is not None:
        o_["actor_rollout_ref.actor.loss_scale_factor"] = a.loss_norm_length
    if kl_in_loss:  # with kl_coef 0 (track_ref_kl) the reference is computed and logged only
        o_["actor_rollout_ref.actor.kl_loss_coef"] = a.kl_coef
        o_["actor_rollout_ref.actor.kl_loss_type"] = KL_KIND[a.kl_kind]
    if use_ref and v.kl_mode == "reward":
        o_["algorithm.kl_ctrl.kl_coef"] = a.kl_coef
        o_["algorithm.kl_penalty"] = KL_KIND[a.kl_kind]
    if use_ref:
        o_["actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu"] = v.micro_batch_size_per_gpu
    if a.tis_cap is not None:  # truncated IS against the sampler's logprobs, token level
        o_["algorithm.rollout_correction.rollout_is"] = "token"
        o_["algorithm.rollout_correction.rollout_is_threshold"] = a.tis_cap
    if "micro_batch_tokens" in o.model_fields_set:
        o_["actor_rollout_ref.actor.use_dynamic_bsz"] = True
        o_["actor_rollout_ref.actor.ppo_max_token_len_per_gpu"] = o.micro_batch_tokens
    if o.packing != "auto":
        o_["actor_rollout_ref.model.use_remove_padding"] = o.packing == "on"
    o_ |= {
        "actor_rollout_ref.model.path": str(files.model_path),
        "actor_rollout_ref.model.enable_gradient_checkpointing": m.gradient_checkpointing,
        "actor_rollout_ref.actor.optim.lr": o.lr,
        "actor_rollout_ref.actor.optim.weight_decay": o.weight_decay,
        "actor_rollout_ref.actor.optim.betas": list(o.betas),
        "actor_rollout_ref.actor.optim.clip_grad": o.grad_clip if o.grad_clip is not None else 1e9,
        "actor_rollout_ref.actor.optim.lr_warmup_steps": o.warmup_steps if o.warmup_steps else -1,
    }
    if v.strategy == "megatron":
        o_ |= {"actor_rollout_ref.actor.optim.lr_decay_style": o.schedule,
               "actor_rollout_ref.actor.optim.min_lr": o.lr * o.min_lr_ratio}
    else:
        o_ |= {"actor_rollout_ref.actor.optim.lr_scheduler_type": o.schedule,
               "actor_rollout_ref.actor.optim.min_lr_ratio": o.min_lr_ratio}
    o_ |= {
        "data.train_files": str(files.train_file),
        "data.val_files": str(files.val_file or files.train_file),
        "data.train_batch_size": r.tasks_per_step,
        "data.max_prompt_length": prompt_len,
        "data.max_response_length": response_len,
        # The env renders the real prompt (system prompt, tools) at run time, so veRL's length
        # filter over the raw prompt column would measure the wrong thing.
        "data.filter_overlong_prompts": False,
        "data.seed": t.seed,
    }
    if files.tokenizer_path is not None:
        o_["actor_rollout_ref.model.tokenizer_path"] = str(files.tokenizer_path)
    o_ |= {
        "actor_rollout_ref.rollout.name": v.rollout,
        "actor_rollout_ref.rollout.mode": "async",
        "actor_rollout_ref.rollout.n": r.group_size,
        "actor_rollout_ref.rollout.temperature": r.temperature,
        "actor_rollout_ref.rollout.top_p": r.top_p,
        "actor_rollout_ref.rollout.calculate_log_probs": True,
        "actor_rollout_ref.rollout.tensor_model_parallel_size": v.tensor_parallel_size,
        "actor_rollout_ref.rollout.gpu_memory_utilization": v.gpu_memory_utilization,
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu": v.micro_batch_size_per_gpu,
        "actor_rollout_ref.rollout.val_kwargs.temperature": e.temperature,
        "actor_rollout_ref.rollout.val_kwargs.do_sample": e.temperature > 0,
        "actor_rollout_ref.rollout.val_kwargs.n": e.samples,
        "actor_rollout_ref.rollout.agent.agent_loop_config_path": str(files.agent_loop_config),
        "actor_rollout_ref.rollout.agent.default_agent_loop": DEFAULT_AGENT_NAME,
        "actor_rollout_ref.rollout.agent.num_workers": v.agent_workers,
    }
    if (sync and not v.use_v1) or t.mode == "one_step_off":
        # Per-turn scores on their turns' tokens: the legacy worker keeps one score per row
        # otherwise (V1 takes them from the agent loop's output); veRL's documented
        # agent_loop_manager_class hook selects the manager.
        o_["+actor_rollout_ref.rollout.agent.agent_loop_manager_class"] = \
            "traject.trainers.verl.worker_loop.TrajectAgentLoopManager"
    if cfg.env.group_reward:
        settings = {"target": cfg.env.group_reward, "args": cfg.env.group_reward_args,
                    "group_size": r.group_size, "timeout_s": v.group_timeout_s}
        o_ |= {"reward.reward_manager.source": "register", "reward.reward_manager.name": GROUP_REWARD_MANAGER,
               "reward.num_workers": 1,
               "+ray_kwargs.ray_init.runtime_env.env_vars.TRAJECT_GROUP_REWARD": json.dumps(settings)}
    o_["critic.enable"] = a.advantage == "gae"
    if a.advantage == "gae":
        o_["critic.model.path"] = str(files.model_path)
        o_["critic.ppo_micro_batch_size_per_gpu"] = v.micro_batch_size_per_gpu
    logger = list(v.logger)
    for name, on in (("tensorboard", t.tensorboard), ("wandb", t.wandb)):
        if on and name not in logger:
            logger.append(name)
    o_ |= {
        "trainer.use_v1": v.use_v1 if sync else False,
        "trainer.n_gpus_per_node": v.gpus_per_node,
        "trainer.nnodes": v.nnodes,
        "trainer.total_epochs": 1_000_000,  # traject counts steps; veRL stops at total_training_steps
        "trainer.total_training_steps": max(t.steps, 1),
        "trainer.save_freq": t.checkpoint_every or -1,
        "trainer.max_actor_ckpt_to_keep": t.keep_checkpoints,
        "trainer.resume_mode": "auto" if t.resume else "disable",
        "trainer.test_freq": (e.every or max(t.steps, 1)) if files.val_file else -1,  # 0: before and after
        "trainer.val_before_train": files.val_file is not None,
        "trainer.default_local_dir": str(out_dir(cfg) / "checkpoints"),
        "trainer.project_name": t.wandb_project if t.wandb else v.project,
        "trainer.experiment_name": v.experiment or f"{cfg.env.name}-{a.advantage}",
        "trainer.logger": logger,
    }
    if not sync:
        o_ |= {"rollout.nnodes": v.nnodes, "rollout.n_gpus_per_node": v.gpus_per_node}
    if t.mode == "fully_async":
        o_ |= {"rollout.n": r.group_size, "rollout.total_rollout_steps": max(t.steps, 1) * r.tasks_per_step}
    return [f"{k}={_value(val)}" for k, val in o_.items()] + list(v.overrides)


def _tasks(env: str, options: dict[str, Any], path: str | None) -> list[Task]:
    if path:
        return read_tasks_jsonl(path)
    from traject.environments.registry import load_tasks

    return load_tasks(env, **options)


def _model_files(cfg: TrainConfig, workdir: Path) -> tuple[Path | str, Path | None]:
    """The model veRL loads (a tiny one is built here, as the local engine does) and, when
    ``model.chat_template`` names one, a tokenizer copy that carries it."""
    m = cfg.model
    if m.path is not None:
        path: Path | str = m.path
    else:
        from traject.agents.hf import build_tiny_model

        assert m.tiny is not None
        path = build_tiny_model(out_dir(cfg) / "base_model", **m.tiny.overrides())
    tok_dir = None
    if m.chat_template is not None:
        from transformers import AutoTokenizer

        from traject.trainers.templates import resolve_chat_template

        tok = AutoTokenizer.from_pretrained(m.tokenizer or path)
        tok.chat_template = resolve_chat_template(m.chat_template)
        tok_dir = workdir / "tokenizer"
        tok.save_pretrained(tok_dir)
    elif m.tokenizer is not None:
        tok_dir = Path(m.tokenizer)
    return path, tok_dir


def prepare(cfg: TrainConfig, *, workdir: Path | None = None, model_path: Path | str | None = None) -> LaunchFiles:
    """Export the train (and eval) tasks as parquet, resolve the model and write the agent-loop YAML."""
    workdir = Path(workdir or out_dir(cfg) / "verl").resolve()
    env = cfg.env.name
    train = export_tasks(_tasks(env, dict(cfg.env.tasks), cfg.env.tasks_path), workdir / "train.parquet",
                         env=env, split=str(cfg.env.tasks.get("split", "train")))
    val = None
    if cfg.eval.tasks_path or cfg.eval.tasks:
        val = export_tasks(_tasks(env, dict(cfg.eval.tasks), cfg.eval.tasks_path), workdir / "val.parquet",
                           env=env, split=str(cfg.eval.tasks.get("split", "test")))
    path, tok_dir = _model_files(cfg, workdir)
    settings = AgentLoopSettings(
        env=env, env_configs={env: dict(cfg.env.config)}, tool_format=cfg.model.tool_format,
        episode_timeout_s=cfg.rollout.episode_timeout_s, seed=cfg.trainer.seed,
        max_new_tokens=cfg.rollout.max_new_tokens,
        store_dir=str(out_dir(cfg) / "trajectories") if cfg.trainer.save_trajectories else None,
        turn_scores=cfg.algorithm.advantage == "turn", turn_rewards=cfg.algorithm.turn_rewards,
        defer_reward=cfg.env.group_reward is not None)
    agent_yaml = write_agent_loop_config(workdir / "agent_loops.yaml", settings)
    return LaunchFiles(train, val, agent_yaml, model_path or path, tok_dir)


def plan(cfg: TrainConfig, *, workdir: Path | None = None, extra_overrides: list[str] = (),
         python: str | None = None, model_path: Path | str | None = None) -> LaunchPlan:
    files = prepare(cfg, workdir=workdir, model_path=model_path)
    overrides = hydra_overrides(cfg, files) + list(extra_overrides)
    module = MODES[cfg.trainer.mode][0]
    return LaunchPlan(files, overrides, [python or sys.executable, "-m", module, *overrides])


def compose(cfg: TrainConfig, overrides: list[str]) -> Any:
    """veRL's hydra config for ``cfg.trainer.mode`` with ``overrides``, as its entry point
    would build it (the asynchronous trainers copy their rollout placement first)."""
    import verl
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    _, name, where = MODES[cfg.trainer.mode]
    config_dir = str(Path(verl.__file__).parent / where)
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        conf = hydra_compose(config_name=name, overrides=list(overrides))
    if cfg.trainer.mode != "sync":
        conf.actor_rollout_ref.rollout.nnodes = conf.rollout.nnodes
        conf.actor_rollout_ref.rollout.n_gpus_per_node = conf.rollout.n_gpus_per_node
    return conf


def validate(cfg: TrainConfig, overrides: list[str]) -> Any:
    """Compose veRL's config and run veRL's own ``validate_config`` on it; return the config."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    conf = compose(cfg, overrides)
    validate_config(conf, use_reference_policy=need_reference_policy(conf), use_critic=need_critic(conf))
    return conf


def check_cuda(cfg: TrainConfig) -> int:
    """Return the number of visible CUDA GPUs, or raise NoCudaGPU saying what to do instead."""
    import torch

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        where = f"CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else "no CUDA device"
        raise NoCudaGPU(
            f"veRL training needs CUDA GPUs, and none is visible here (torch {torch.__version__}, "
            f"{where}). veRL would wait forever for a GPU placement group, so nothing was started. "
            "On a CPU machine use `traject train --backend local`; to see the veRL command without "
            "running it, add --dry-run.")
    gpus = verl_section(cfg).gpus_per_node
    if count < gpus:
        raise NoCudaGPU(f"verl.gpus_per_node is {gpus} but only {count} CUDA GPU(s) "
                        "are visible on this node: lower verl.gpus_per_node or expose more GPUs")
    return count


def _sft_first(cfg: TrainConfig, log_fn: Callable[[str], None]) -> Path:
    """The SFT warm start (``sft.enabled``) runs with traject's SFT on one device, as on the
    local engine; veRL then starts from the model it saved."""
    import anyio

    from traject.trainers.local import LocalTrainer

    target = out_dir(cfg) / "sft_model"
    if (target / "config.json").exists():
        log_fn(f"sft: reusing {target}")
        return target
    trainer = LocalTrainer(cfg.model_copy(update={"backend": "local"}), log_fn=log_fn)
    trainer.setup()
    anyio.run(trainer.warm_start)
    assert trainer.model is not None
    trainer.model.save_pretrained(target)
    trainer.tokenizer.save_pretrained(target)
    return target


def launch(cfg: TrainConfig, *, dry_run: bool = False, extra_overrides: list[str] = (),
           workdir: Path | None = None, log_fn: Callable[[str], None] = print) -> int:
    """Run veRL (or, with ``dry_run``, validate and print its command); return the exit status."""
    if not dry_run:
        check_cuda(cfg)
        from traject.trainers.verl._require import require_verl

        require_verl(MODES[cfg.trainer.mode][0])
    model_path = None
    if cfg.sft.enabled:
        if dry_run:
            model_path = out_dir(cfg) / "sft_model"
            print(f"# sft.enabled: the SFT warm start runs first (traject's SFT, one device) and saves "
                  f"{model_path}; veRL starts from it", file=sys.stderr)
        else:
            model_path = _sft_first(cfg, log_fn)
    p = plan(cfg, workdir=workdir, extra_overrides=extra_overrides, model_path=model_path)
    if dry_run:
        try:
            validate(cfg, p.overrides if model_path is None else _with_model(p.overrides, cfg, workdir))
        except ImportError:
            print("# veRL is not installed here: the command was not validated", file=sys.stderr)
        else:
            print(f"# validated with veRL's validate_config ({MODES[cfg.trainer.mode][1]})", file=sys.stderr)
        if cfg.trainer.mode != "sync":
            print(f"# trainer.mode {cfg.trainer.mode}: veRL's bypass mode (pi_old = the rollout's logprobs) swaps "
                  "the policy loss for its own bypass_mode PPO-clip loss; traject's estimators still apply",
                  file=sys.stderr)
        print(p.shell())
        return 0
    return subprocess.call(p.command)


def _with_model(overrides: list[str], cfg: TrainConfig, workdir: Path | None) -> list[str]:
    """For validation in a dry run, the SFT model (not built yet) is stood for by the base model."""
    base, _ = _model_files(cfg, Path(workdir or out_dir(cfg) / "verl").resolve())
    out = []
    for o in overrides:
        key = o.split("=", 1)[0]
        out.append(f"{key}={base}" if key in ("actor_rollout_ref.model.path", "critic.model.path") else o)
    return out


def run_cli(config_path: str | Path, *, dry_run: bool = False, overrides: list[str] = (),
            sets: list[str] = ()) -> int:
    """``traject train CONFIG --backend verl``: errors become one clear message and exit status 2.
    ``sets`` are ``--set key=value`` config overrides; ``overrides`` raw hydra overrides."""
    from traject.trainers.verl._require import VerlMissing

    try:
        cfg = load_config(config_path, list(sets), backend="verl")
        return launch(cfg, dry_run=dry_run, extra_overrides=list(overrides))
    except (ConfigError, NoCudaGPU, VerlMissing) as exc:
        print(f"traject train --backend verl: {exc}", file=sys.stderr)
        return 2


def _run_verl(cfg: TrainConfig, log_fn: Callable[[str], None]) -> Any:
    """The runner of ``backend: verl`` configs (``traject train`` without ``--backend``)."""
    from traject.trainers.verl._require import VerlMissing

    try:
        code = launch(cfg, log_fn=log_fn)
    except (NoCudaGPU, VerlMissing) as exc:
        raise ConfigError(f"backend verl: {exc}") from None
    if code:
        raise RuntimeError(f"veRL exited with status {code}")
    return code


register_backend("verl", _run_verl)
