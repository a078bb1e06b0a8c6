"""LocalTrainer: the built-in learner. One process, CPU or one GPU, HF transformers + torch.

Each step: sample tasks -> the agents' Rollouts engine runs G episodes per task with an
HFPolicy that shares the model's weights -> rewards (the env's, or the one given) ->
advantages -> PPO-clip update -> metrics line. Around the steps: an optional SFT warm start,
evaluations on held-out tasks, checkpoints (resumable), the final model.

Everything a step draws at random is derived from ``(trainer.seed, step)`` (the tasks, the
episode seeds), so a run resumed from step k makes the same steps as one that never stopped.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
import os
import random
import statistics
import time
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import torch

from traject.agents.hf.policy import HFPolicy
from traject.agents.rollouts import Rollouts
from traject.environments.base import Env
from traject.rewards.base import GroupReward, Reward
from traject.trainers.advantage import compute_advantages
from traject.trainers.batching import select_trainable, sequences_from_trajectories
from traject.trainers.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from traject.trainers.config import ConfigError, TrainConfig, off_policy_problem
from traject.trainers.metrics import MetricsLogger
from traject.trainers.offpolicy import Group, InProcessWeights, OffPolicyRollouts, ServerWeights, WeightSink
from traject.trainers.schedule import make_scheduler
from traject.trainers.update import PolicyUpdater
from traject.types import Status, Task, Trajectory

log = logging.getLogger(__name__)

__all__ = ["EvalResult", "LocalTrainer", "TrainResult", "default_threads", "load_task_file"]


def default_threads(model: torch.nn.Module | None = None) -> int:
    """torch intra-op threads: 1 for tiny models (per-op overhead dominates, and on a shared
    machine spinning OpenMP threads slow everything down many times over), else the cores this
    process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if model is not None and sum(p.numel() for p in model.parameters()) < 20_000_000:
        return 1
    return max(1, cores)


def load_task_file(path: str | Path) -> list[Task]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such task file (a JSONL of traject Task objects)")
    tasks = []
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    tasks.append(Task.model_validate_json(line))
                except Exception as exc:  # noqa: BLE001 - name the line
                    raise ValueError(f"{path}:{lineno}: not a task: {exc}") from None
    return tasks


@dataclass
class EvalResult:
    label: str
    n: int
    success_rate: float
    mean_reward: float
    tool_calls: float          # tool calls per episode
    text_answer_rate: float    # share of episodes that ended on a text reply instead of a tool
    mean_turns: float
    infra_errors: int
    trajectories: list[Trajectory] = field(default_factory=list, repr=False)

    @classmethod
    def of(cls, label: str, trajs: Sequence[Trajectory]) -> EvalResult:
        ok = [t for t in trajs if t.status is not Status.INFRA_ERROR]
        return cls(label=label, n=len(trajs), success_rate=_mean([float(t.success) for t in ok]),
                   mean_reward=_mean([t.reward.total if t.reward is not None else 0.0 for t in ok]),
                   tool_calls=_mean([float(t.usage.tool_calls) for t in ok]),
                   text_answer_rate=_mean([float(bool(t.steps) and not t.steps[-1].action.tool_calls) for t in ok]),
                   mean_turns=_mean([float(t.num_turns) for t in ok]), infra_errors=len(trajs) - len(ok),
                   trajectories=list(trajs))

    def as_metrics(self) -> dict[str, float]:
        p = f"eval/{self.label}/"
        return {p + "success": self.success_rate, p + "reward": self.mean_reward, p + "n": self.n,
                p + "tool_calls": self.tool_calls, p + "text_answer_rate": self.text_answer_rate,
                p + "turns": self.mean_turns, p + "infra_errors": self.infra_errors}

    def summary(self) -> dict[str, Any]:
        return {"label": self.label, "n": self.n, "success_rate": self.success_rate, "mean_reward": self.mean_reward,
                "tool_calls": self.tool_calls, "text_answer_rate": self.text_answer_rate,
                "mean_turns": self.mean_turns, "infra_errors": self.infra_errors}


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    evals: dict[str, EvalResult]
    sft_metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def _step_rng(seed: int, step: int, salt: str) -> random.Random:
    return random.Random(f"{seed}:{salt}:{step}")


class LocalTrainer:
    """The built-in learner.

    Give it a :class:`TrainConfig`; everything else is optional and defaults from the config:
    ``env_factory`` (one fresh Env per episode), ``train_tasks``/``eval_tasks``, ``reward``
    (default: the env's), ``group_reward`` (default: ``env.group_reward``'s), ``model``/``tokenizer`` (default: loaded or built per ``config.model``).
    ``log`` receives one line of text per notable event (the CLI prints them).
    """

    def __init__(self, config: TrainConfig, *, env_factory: Callable[[], Env] | None = None,
                 train_tasks: Sequence[Task] | None = None, eval_tasks: Sequence[Task] | None = None,
                 reward: Reward | None = None, model: torch.nn.Module | None = None, tokenizer: Any = None,
                 log_fn: Callable[[str], None] | None = None, group_reward: GroupReward | None = None) -> None:
        self.config = config
        self.out_dir = Path(config.trainer.out_dir)
        self._env_factory = env_factory
        self._train_tasks = list(train_tasks) if train_tasks is not None else None
        self._eval_tasks = list(eval_tasks) if eval_tasks is not None else None
        self.reward = reward
        if group_reward is None and config.env.group_reward:
            from traject.trainers.group_reward import load_group_reward

            group_reward = load_group_reward(config.env.group_reward, dict(config.env.group_reward_args))
        self.group_reward = group_reward  # scores each task's G samples together (G > 1 only)
        self.model = model
        self.tokenizer = tokenizer
        self.log = log_fn or (lambda msg: log.info(msg))
        self.step = 0
        self.state: dict[str, Any] = {"sft_done": False, "evals": {}, "policy_version": 0}
        self._ready = False
        self.ray_episodes: Any = None  # RayEpisodes while a run with rollout.ray is on

    # --- set-up -------------------------------------------------------------------------------

    def env_factory(self) -> Env:
        if self._env_factory is not None:
            return self._env_factory()
        import traject

        return traject.make(self.config.env.name, **self.config.env.config)

    def _tasks(self, options: dict[str, Any], path: str | None) -> list[Task]:
        if path:
            return load_task_file(path)
        import traject

        return traject.load_tasks(self.config.env.name, **options)

    @property
    def train_tasks(self) -> list[Task]:
        if self._train_tasks is None:
            self._train_tasks = self._tasks(dict(self.config.env.tasks), self.config.env.tasks_path)
        if not self._train_tasks:
            raise ValueError("no training tasks: check env.tasks / env.tasks_path")
        return self._train_tasks

    @property
    def eval_tasks(self) -> list[Task]:
        if self._eval_tasks is None:
            self._eval_tasks = self._tasks(dict(self.config.eval.tasks), self.config.eval.tasks_path)
        return self._eval_tasks

    def _device(self) -> torch.device:
        want = self.config.model.device
        if want == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(want)

    def _load_model(self) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        mc = self.config.model
        dtype = getattr(torch, mc.dtype)
        if self.model is None:
            if mc.path is not None:
                path = Path(mc.path)
            else:
                from traject.agents.hf import build_tiny_model

                assert mc.tiny is not None
                path = build_tiny_model(self.out_dir / "base_model", **mc.tiny.overrides())
            self.model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
            if self.tokenizer is None:
                self.tokenizer = AutoTokenizer.from_pretrained(mc.tokenizer or path)
        elif self.tokenizer is None:
            raise ValueError("LocalTrainer(model=...) needs tokenizer= too")
        self.model.to(self.device)
        if mc.gradient_checkpointing and hasattr(self.model, "gradient_checkpointing_enable"):
            self.model.gradient_checkpointing_enable()

    def setup(self) -> None:
        if self._ready:
            return
        from traject.agents.hf import HFPolicyConfig

        cfg = self.config
        problem = off_policy_problem(cfg)
        if problem:
            raise ConfigError(f"training config: {problem}")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "config.yaml").write_text(cfg.to_yaml())
        torch.manual_seed(cfg.trainer.seed)
        random.seed(cfg.trainer.seed)
        np.random.seed(cfg.trainer.seed % 2**32)
        self.device = self._device()
        self._load_model()
        assert self.model is not None
        torch.set_num_threads(cfg.trainer.threads or default_threads(self.model))
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        rc = cfg.rollout
        from traject.trainers.templates import resolve_chat_template

        common = dict(tool_format=cfg.model.tool_format, chat_template=resolve_chat_template(cfg.model.chat_template), max_new_tokens=rc.max_new_tokens,
                      max_batch_size=max(1, min(rc.concurrency, rc.group_size * rc.tasks_per_step)),
                      max_model_len=cfg.model.max_seq_len, seed=cfg.trainer.seed)
        # Sampling: in-process, from the model itself (sync) or its own copy of the weights
        # (async: the model trains meanwhile), or through a server (rollout.server_url).
        # rollout.ray: the episodes run in Ray actors that sample through that server, or through
        # one this trainer starts (see _serve_sampler).
        self.sampler_model: torch.nn.Module | None = self.model
        self._weights: WeightSink | None = None
        self.server: Any = None
        server_url = rc.server_url
        if rc.ray is not None and server_url is None:
            server_url = self._serve_sampler(common)
        if server_url:
            from traject.agents.completions_policy import CompletionsPolicy, CompletionsPolicyConfig

            self.sampler_model = None
            self.policy = CompletionsPolicy(CompletionsPolicyConfig(
                model=_served_model_name(cfg), base_url=server_url, temperature=rc.temperature, top_p=rc.top_p,
                max_tokens=rc.max_new_tokens, max_model_len=cfg.model.max_seq_len, tool_format=cfg.model.tool_format,
                chat_template=common["chat_template"]), tokenizer=self.tokenizer)
            self._weights = ServerWeights(self.model, self.tokenizer, self.policy, self.out_dir / "pushed_weights")
        else:
            if rc.mode == "async":
                self.sampler_model = copy.deepcopy(self.model).eval()
                for p in self.sampler_model.parameters():
                    p.requires_grad_(False)
            self.policy = HFPolicy(self.sampler_model, self.tokenizer, HFPolicyConfig(
                temperature=rc.temperature, top_p=rc.top_p, **common))
            if rc.mode == "async":
                self._weights = InProcessWeights(self.model, self.policy)
        self.eval_policy = HFPolicy(self.model, self.tokenizer, HFPolicyConfig(
            temperature=cfg.eval.temperature, **common))
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.optim.lr, betas=cfg.optim.betas,
                                           eps=cfg.optim.eps, weight_decay=cfg.optim.weight_decay)
        self.scheduler = make_scheduler(self.optimizer, total_steps=max(cfg.trainer.steps, 1),
                                        warmup_steps=cfg.optim.warmup_steps, schedule=cfg.optim.schedule,
                                        min_lr_ratio=cfg.optim.min_lr_ratio)
        self.ref_model: torch.nn.Module | None = None
        self.metrics = MetricsLogger(self.out_dir, tensorboard=cfg.trainer.tensorboard, wandb=cfg.trainer.wandb,
                                     wandb_project=cfg.trainer.wandb_project, run_config=cfg.model_dump(mode="json"))
        self._ready = True

    def _serve_sampler(self, common: dict[str, Any]) -> str:
        """``traject serve`` in this process, on a copy of the model (the weights reach it through
        its weight-update endpoint, as any server's do); its /v1 URL."""
        from traject.agents.hf import HFPolicyConfig
        from traject.serve import ServeEngine, ServerThread

        assert self.model is not None
        sampler = copy.deepcopy(self.model).eval()
        for p in sampler.parameters():
            p.requires_grad_(False)
        engine = ServeEngine(HFPolicy(sampler, self.tokenizer, HFPolicyConfig(**common)),
                             model_name=_served_model_name(self.config))
        self.server = ServerThread(engine, host=self.config.rollout.serve_host).start()
        self.log(f"rollout.ray: the actors sample from {self.server.base_url}")
        return self.server.base_url + "/v1"

    def _remote_episodes(self) -> Any:
        """rollout.ray: the Ray actors the training episodes run in (``Rollouts(remote=...)``).
        They get factories (pickled to the nodes): the env's, and a CompletionsPolicy's with
        this trainer's tokenizer object, so no node needs the model's files."""
        from traject.agents.completions_policy import CompletionsPolicy
        from traject.agents.ray_rollouts import RayEpisodes

        rc = self.config.rollout
        if self._env_factory is not None:
            env_factory = self._env_factory
        else:
            import traject

            env_factory = functools.partial(traject.make, self.config.env.name, **self.config.env.config)
        policy_factory = functools.partial(CompletionsPolicy, self.policy.config, tokenizer=self.tokenizer)
        return RayEpisodes(env_factory, policy_factory, address=rc.ray, reward=self.reward,
                           episode_timeout_s=rc.episode_timeout_s, actor_concurrency=rc.concurrency)

    def _make_updater(self) -> PolicyUpdater:
        assert self.model is not None
        algo = self.config.algorithm
        if (algo.kl_coef > 0 or algo.track_ref_kl) and self.ref_model is None:
            # The reference is the policy as RL starts (after any SFT).
            self.ref_model = copy.deepcopy(self.model).eval()
            for p in self.ref_model.parameters():
                p.requires_grad_(False)
        return PolicyUpdater(self.model, self.optimizer, self.config.algorithm, self.config.optim, pad_id=self.pad_id,
                             device=self.device, ref_model=self.ref_model, shuffle_seed=self.config.trainer.seed)

    # --- checkpoints --------------------------------------------------------------------------

    @property
    def checkpoint_dir(self) -> Path:
        return self.out_dir / "checkpoints"

    def save(self) -> Path:
        assert self.model is not None
        # What the logs held when this state was saved: a resumed run cuts them back to it.
        self.state["log_sizes"] = {name: (self.out_dir / name).stat().st_size if (self.out_dir / name).exists() else 0
                                   for name in _LOGS}
        path = save_checkpoint(self.checkpoint_dir, self.step, model=self.model, optimizer=self.optimizer,
                               scheduler=self.scheduler, state=self.state, keep=self.config.trainer.keep_checkpoints)
        if self.ref_model is not None:
            torch.save(self.ref_model.state_dict(), path / "ref_model.pt")
        return path

    def try_resume(self) -> bool:
        path = latest_checkpoint(self.checkpoint_dir) if self.config.trainer.resume else None
        if path is None:
            return False
        assert self.model is not None
        state = load_checkpoint(path, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler)
        self.step = int(state.pop("step"))
        self.state.update(state)
        self.eval_policy.version = int(self.state.get("policy_version", 0))
        if isinstance(self.policy, HFPolicy):
            self.policy.version = self.eval_policy.version
        if (path / "ref_model.pt").exists():
            self.ref_model = copy.deepcopy(self.model).eval()
            self.ref_model.load_state_dict(torch.load(path / "ref_model.pt", weights_only=True))
            for p in self.ref_model.parameters():
                p.requires_grad_(False)
        for name, size in self.state.get("log_sizes", {}).items():
            _truncate_file(self.out_dir / name, int(size))
        self.log(f"resumed from {path} at step {self.step}")
        return True

    # --- phases -------------------------------------------------------------------------------

    async def rollout(self, tasks: Sequence[Task], *, group_size: int, seed: int, policy: Any) -> list[Trajectory]:
        engine = Rollouts(policy, self.env_factory, group_size=group_size, concurrency=self.config.rollout.concurrency,
                          episode_timeout_s=self.config.rollout.episode_timeout_s, reward=self.reward, seed=seed,
                          group_reward=self.group_reward if group_size > 1 else None,
                          remote=self.ray_episodes if self.ray_episodes is not None and policy is self.policy else None)
        trajs = await engine.run(list(tasks))
        order = {t.id: i for i, t in enumerate(tasks)}
        trajs.sort(key=lambda t: (order.get(t.task_id, 0), t.sample_index))
        return trajs

    def step_tasks(self, step: int) -> list[Task]:
        pool = self.train_tasks
        k = self.config.rollout.tasks_per_step
        rng = _step_rng(self.config.trainer.seed, step, "tasks")
        return rng.sample(pool, k) if k <= len(pool) else [rng.choice(pool) for _ in range(k)]

    async def evaluate(self, label: str, tasks: Sequence[Task] | None = None) -> EvalResult:
        self.setup()
        tasks = list(tasks if tasks is not None else self.eval_tasks)
        t0 = time.perf_counter()
        trajs = await self.rollout(tasks, group_size=self.config.eval.samples,
                                   seed=self.config.trainer.seed * 7_919 + 1, policy=self.eval_policy)
        result = EvalResult.of(label, trajs)
        for t in trajs:
            t.info["phase"] = f"eval:{label}"
            t.info["step"] = self.step
        self._write_trajectories(trajs)
        self.state["evals"][label] = result.summary()
        self.metrics.log(self.step, {**result.as_metrics(), "time/eval_s": time.perf_counter() - t0})
        self.log(f"eval {label}: success {result.success_rate:.3f}, mean reward {result.mean_reward:.3f}, "
                 f"{result.tool_calls:.2f} tool calls per episode, {result.text_answer_rate:.2f} answered in text, "
                 f"{result.n} episodes ({time.perf_counter() - t0:.1f}s)")
        return result

    async def warm_start(self) -> dict[str, float]:
        """The SFT phase (``config.sft``), once per run."""
        from traject.trainers.sft import (
            conversations_from_trajectories,
            load_chat_jsonl,
            load_script,
            run_sft,
            supervised_sequences,
        )
        from traject.agents.scripted import ScriptedPolicy

        sc = self.config.sft
        t0 = time.perf_counter()
        if sc.source == "jsonl":
            assert sc.path is not None
            conversations = load_chat_jsonl(sc.path)
        else:
            assert sc.script is not None
            script = load_script(sc.script)
            if sc.script_args:
                script = script(**sc.script_args)
            tasks = self._tasks(dict(sc.tasks), sc.tasks_path)
            demos = await self.rollout(tasks, group_size=1, seed=self.config.trainer.seed * 31 + 7,
                                       policy=ScriptedPolicy(script))
            tools = self.env_factory().tools
            conversations = conversations_from_trajectories(demos, tools, only_successful=sc.only_successful)
            self.log(f"sft: {len(conversations)} demonstrations from {sc.script} "
                     f"(success {_mean([float(t.success) for t in demos]):.2f})")
        seqs = supervised_sequences(self.eval_policy.renderer, conversations, max_len=self.config.model.max_seq_len)

        def on_step(i: int, m: dict[str, float]) -> None:
            if i % 10 == 0:
                self.metrics.log(self.step, {"sft/step": i, **m})

        assert self.model is not None
        metrics = run_sft(self.model, seqs, sc, pad_id=self.pad_id, device=self.device,
                          micro_batch_tokens=self.config.optim.micro_batch_tokens, seed=self.config.trainer.seed,
                          grad_clip=self.config.optim.grad_clip, on_step=on_step)
        metrics["sft/seconds"] = time.perf_counter() - t0
        metrics["sft/sequences"] = len(seqs)
        self.metrics.log(self.step, metrics)
        self.log(f"sft: {len(seqs)} sequences, loss {metrics.get('sft/loss', float('nan')):.3f}, "
                 f"{metrics['sft/seconds']:.1f}s")
        self.state["sft_done"] = True
        self.state["sft_metrics"] = metrics
        return metrics

    async def train_step(self, updater: PolicyUpdater) -> dict[str, Any]:
        cfg = self.config
        step = self.step
        t0 = time.perf_counter()
        tasks = self.step_tasks(step)
        trajs = await self.rollout(tasks, group_size=cfg.rollout.group_size,
                                   seed=self._rollout_seed(step), policy=self.policy)
        t_roll = time.perf_counter()
        if self._weights is None:
            metrics = await self._learn(trajs, updater, step=step, t0=t0, t_roll=t_roll)
        else:  # a server samples: it gets the new weights before the next step
            version = int(self.state["policy_version"]) + 1
            metrics = await self._learn(trajs, updater, step=step, t0=t0, t_roll=t_roll, version=version)
            await self._weights.push(version)
            metrics["time/push_s"] = time.perf_counter() - t0 - metrics["time/step_s"]
            metrics["time/step_s"] = time.perf_counter() - t0
        self.metrics.log(step, metrics)
        self.step += 1
        return metrics

    def _rollout_seed(self, step: int) -> int:
        return (self.config.trainer.seed * 1_000_003 + step) % 2**62

    def off_policy_rollouts(self) -> OffPolicyRollouts:
        """The producer of ``rollout.mode: async`` (used as ``async with``), from this step on."""
        rc = self.config.rollout
        return OffPolicyRollouts(self.policy, self.env_factory, tasks_for_batch=self.step_tasks,
                                 seed_for_batch=self._rollout_seed, group_size=rc.group_size,
                                 groups_per_step=rc.tasks_per_step, max_off_policy_steps=rc.max_off_policy_steps,
                                 on_stale=rc.on_stale, concurrency=rc.concurrency,
                                 episode_timeout_s=rc.episode_timeout_s, reward=self.reward,
                                 version=int(self.state["policy_version"]), start_batch=self.step,
                                 remote=self.ray_episodes)

    async def async_train_step(self, rl: OffPolicyRollouts, updater: PolicyUpdater) -> dict[str, Any]:
        """One step of ``rollout.mode: async``: the next batch within the staleness bound (the
        producer keeps generating meanwhile), an update in a worker thread, the weights pushed
        to the sampling policy."""
        step = self.step
        t0 = time.perf_counter()

        async def learn(groups: list[Group]) -> dict[str, Any]:
            t_roll = time.perf_counter()
            stats = rl.take_stats()
            trajs = [t for g in groups for t in g.trajectories]
            for g in groups:
                for t in g.trajectories:
                    t.info["staleness"] = g.staleness(rl.version)
            m = await self._learn(trajs, updater, step=step, t0=t0, t_roll=t_roll, version=rl.version + 1)
            m.update(stats.as_metrics())
            m["offpolicy/groups_in_flight"] = rl.in_flight
            return m

        assert self._weights is not None
        metrics = await rl.step(learn, self._weights)
        t_end = time.perf_counter()
        metrics["time/push_s"] = t_end - t0 - metrics["time/step_s"]
        metrics["time/step_s"] = t_end - t0
        if isinstance(self.policy, HFPolicy):
            metrics["sampler/busy_s"] = self.policy.busy_s
        self.metrics.log(step, metrics)
        self.step += 1
        return metrics

    async def _learn(self, trajs: list[Trajectory], updater: PolicyUpdater, *, step: int, t0: float,
                     t_roll: float, version: int | None = None) -> dict[str, Any]:
        """Advantages, the update, the trajectories written, the step's metrics. ``version`` is
        the version the update makes when the sampler has weights of its own (async, or a
        server); the update then runs in a worker thread, so generation goes on meanwhile."""
        cfg = self.config
        kept, drops = select_trainable(trajs)
        advantages = compute_advantages(kept, cfg.algorithm)
        seqs = sequences_from_trajectories(kept, advantages, max_len=cfg.model.max_seq_len, stats=drops)
        t_adv = time.perf_counter()
        if version is None:
            upd = updater.update(seqs, step=step)
        else:
            upd = await anyio.to_thread.run_sync(lambda: updater.update(seqs, step=step))
        with warnings.catch_warnings():
            # The schedule counts trainer steps, also those whose update was skipped.
            warnings.filterwarnings("ignore", message=".*lr_scheduler.step.*")
            self.scheduler.step()
        if version is None:  # the sampler shares the model
            self.policy.version += 1
            version = self.policy.version
        self.state["policy_version"] = version
        self.eval_policy.version = version
        t_upd = time.perf_counter()
        for t in trajs:
            t.info["phase"] = "train"
            t.info["step"] = step
        if cfg.trainer.save_trajectories:
            self._write_trajectories(trajs)
        t_end = time.perf_counter()
        rewards = [t.reward.total for t in kept if t.reward is not None]
        scored = [t for t in trajs if t.reward is not None and not t.reward.failed]
        gen_tokens = sum(t.usage.completion_tokens for t in trajs)
        metrics: dict[str, Any] = {
            "reward/mean": _mean(rewards), "reward/std": statistics.pstdev(rewards) if len(rewards) > 1 else 0.0,
            "success": _mean([float(t.success) for t in scored]),
            "episodes": len(trajs), "trained_episodes": len(kept),
            "turns/mean": _mean([float(t.num_turns) for t in trajs]),
            "tool_calls/mean": _mean([float(t.usage.tool_calls) for t in trajs]),
            "format_errors/mean": _mean([float(t.usage.format_errors) for t in trajs]),
            "response_tokens/mean": gen_tokens / max(len(trajs), 1),
            "status/max_turns": sum(t.status is Status.MAX_TURNS for t in trajs),
            "status/timeout": sum(t.status is Status.TIMEOUT for t in trajs),
            "advantage/nonzero_frac": _mean([float(any(a != 0 for a in (x if isinstance(x, list) else [x])))
                                             for x in advantages]),
            "lr": self.scheduler.get_last_lr()[0], "policy_version": version,
            "time/rollout_s": t_roll - t0, "time/advantage_s": t_adv - t_roll, "time/update_s": t_upd - t_adv,
            "time/log_s": t_end - t_upd, "time/step_s": t_end - t0,
            "throughput/rollout_tokens_per_s": gen_tokens / max(t_roll - t0, 1e-9),
            **drops.as_metrics(), **upd,
        }
        metrics["throughput/train_tokens_per_s"] = upd.get("update/tokens_per_s", 0.0)
        return metrics

    def _write_trajectories(self, trajs: Sequence[Trajectory]) -> None:
        if not trajs:
            return
        path = self.out_dir / "trajectories.jsonl"
        with open(path, "a") as fh:
            for t in trajs:
                fh.write(t.model_dump_json() + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    # --- the run ------------------------------------------------------------------------------

    async def arun(self, *, stop_after: int | None = None) -> TrainResult:
        """SFT (if configured and not done), eval, RL steps, eval, final model. ``stop_after``
        ends the run early after that many steps (with a checkpoint), as a crash would."""
        t0 = time.perf_counter()
        self.setup()
        cfg = self.config
        self.try_resume()
        if cfg.sft.enabled and not self.state["sft_done"]:
            await self.warm_start()
            self.save()
        evals: dict[str, EvalResult] = {}
        eval_before = "sft" if cfg.sft.enabled else "initial"
        if self.eval_tasks and eval_before not in self.state["evals"]:
            evals[eval_before] = await self.evaluate(eval_before)
            self.save()
        updater = self._make_updater()
        try:
            if self._weights is not None:
                # The sampler starts from the weights as they are now (after SFT, or resumed).
                await self._weights.push(int(self.state["policy_version"]))
            async with contextlib.AsyncExitStack() as stack:
                if cfg.rollout.ray is not None:
                    self.ray_episodes = await stack.enter_async_context(self._remote_episodes())
                if cfg.rollout.mode == "async":
                    async with self.off_policy_rollouts() as rl:
                        stopped = await self._train_steps(lambda: self.async_train_step(rl, updater), stop_after)
                else:
                    stopped = await self._train_steps(lambda: self.train_step(updater), stop_after)
        finally:
            self.ray_episodes = None
            if isinstance(self._weights, ServerWeights):
                await self.policy.aclose()
            if self.server is not None:
                await anyio.to_thread.run_sync(self.server.stop)
                self.server = None
        if stopped:
            self.save()
            return TrainResult(self.out_dir, self.step, evals, self.state.get("sft_metrics", {}),
                               time.perf_counter() - t0)
        if self.eval_tasks and cfg.trainer.steps > 0 and "final" not in self.state["evals"]:
            evals["final"] = await self.evaluate("final")
        self.save()
        assert self.model is not None
        final_dir = self.out_dir / "model"
        self.model.save_pretrained(final_dir)
        self.tokenizer.save_pretrained(final_dir)
        for label, summary in self.state["evals"].items():
            if label not in evals:
                evals[label] = EvalResult(**summary)
        (self.out_dir / "summary.json").write_text(json.dumps(
            {"steps": self.step, "evals": {k: v.summary() for k, v in evals.items()},
             "seconds": time.perf_counter() - t0}, indent=2))
        self.metrics.close()
        return TrainResult(self.out_dir, self.step, evals, self.state.get("sft_metrics", {}), time.perf_counter() - t0)

    async def _train_steps(self, train_step: Callable[[], Awaitable[dict[str, Any]]],
                           stop_after: int | None) -> bool:
        """RL steps with their checkpoints and evaluations; True when ``stop_after`` ended them."""
        cfg = self.config
        while self.step < cfg.trainer.steps:
            m = await train_step()
            kl = f" kl(ref) {m['update/kl']:.4f}" if "update/kl" in m else ""
            ent = f" entropy {m['update/entropy']:.3f}" if "update/entropy" in m else ""
            self.log(f"step {self.step}/{cfg.trainer.steps}: reward {m['reward/mean']:.3f} success {m['success']:.2f}"
                     f"{kl}{ent} ({m['time/rollout_s']:.1f}s rollout, {m['time/update_s']:.1f}s update)")
            every = cfg.trainer.checkpoint_every
            if every and self.step % every == 0 and self.step < cfg.trainer.steps:
                self.save()
            if cfg.eval.every and self.step % cfg.eval.every == 0 and self.step < cfg.trainer.steps and self.eval_tasks:
                await self.evaluate(f"step{self.step}")
            if stop_after is not None and self.step >= stop_after:
                return True
        return False

    def run(self, *, stop_after: int | None = None) -> TrainResult:
        return anyio.run(lambda: self.arun(stop_after=stop_after))


def _served_model_name(cfg: TrainConfig) -> str:
    """The model's name in requests to a server (traject serve answers whatever it is)."""
    return Path(cfg.model.path).name if cfg.model.path else "traject-tiny"


def _mean(xs: Sequence[float]) -> float:
    return float(sum(xs) / len(xs)) if xs else 0.0


_LOGS = ("metrics.jsonl", "trajectories.jsonl")


def _truncate_file(path: Path, size: int) -> None:
    """Cut ``path`` back to ``size`` bytes: a resumed run drops what the interrupted run wrote
    after its checkpoint."""
    if path.exists() and path.stat().st_size > size:
        with open(path, "r+b") as fh:
            fh.truncate(size)
