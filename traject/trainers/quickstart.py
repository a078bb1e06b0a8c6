"""The quickstart: the README's first command, end to end on a CPU with no downloads, with
fair baselines.

The task (the ``lookup`` env): "How much do two fig and three kiwi cost in total?" The
prices are hidden behind a ``lookup`` tool, so an episode takes a lookup per item, arithmetic
over the results (quantity times price, summed) and a ``submit``. Training tasks use only
"seen" (item, quantity) pairings; the held-out tasks come from the same generator (another
split) and each holds at least one pairing never shown in training
(:func:`traject.environments.builtin.lookup.held_out_pair`).

The run, from one tiny model built locally (Qwen2 architecture, ~0.5M parameters, its own BPE
tokenizer, the ``compact`` chat template):

1. an imperfect demonstrator (:func:`~traject.environments.builtin.lookup.demonstrator`)
   plays the training tasks; its mistakes are ordinary ones: a wrong sum in some episodes, a
   missed lookup (a guessed price) in others;
2. baseline (a): SFT on all its demonstrations; baseline (b): SFT on its successful ones only
   (rejection-sampling fine-tuning). Both start from the same initial weights and get the same
   budget: ``sft.steps`` optimizer steps of ``sft.batch_size`` sequences at ``sft.lr``;
3. (c): the better of (a) and (b) on greedy success over a validation split (the ``validation``
   split of the same generator, with the held-out tasks' options: never the test tasks), then
   GRPO on the env's outcome reward (right total, submitted) for ``trainer.steps`` steps;
4. each is evaluated on the same held-out tasks: greedy success, and sampled success at
   temperature 1 (pass@1 and pass@k over ``k`` samples per task), each with a 95% bootstrap
   interval over tasks (:mod:`traject.eval.stats`).

The run directory holds one sub-directory per phase (``sft_all``, ``sft_success``, ``rl``:
metrics, trajectories, config, checkpoints), ``reward_curve.png`` and ``quickstart.json``
(the table, ``gain_over_best_sft_points``, the training-reward trend).
``configs/quickstart.yaml`` is the same run as a config (``traject train`` runs its SFT and RL
phases as one run, without the baselines).
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel, ConfigDict

from traject.eval.stats import Estimate, bootstrap_mean, pass_at_k
from traject.trainers.config import TrainConfig, config_from_dict
from traject.trainers.local import LocalTrainer
from traject.trainers.metrics import read_metrics
from traject.types import Status, Task, Trajectory

__all__ = ["QUICKSTART", "PhaseResult", "QuickstartReport", "RewardTrend", "plot_reward_curve", "quickstart_config",
           "phase_config", "reward_trend", "run_quickstart", "sft_baseline", "validation_split",
           "validation_tasks"]

_TASKS = {"items_per_order": 2, "max_quantity": 2, "max_price": 4, "quantity_words": True}

# The quickstart run, as a config dict (``configs/quickstart.yaml`` holds the same).
QUICKSTART: dict[str, Any] = {
    "backend": "local",
    "model": {"tiny": {"seed": 0}, "chat_template": "compact", "max_seq_len": 1024},
    "env": {
        "name": "lookup",
        "config": {"max_turns": 4, "system_prompt": ""},
        "tasks": {"split": "train", "n": 2000, "combos": "seen", **_TASKS},
    },
    "eval": {"tasks": {"split": "test", "n": 200, "combos": "unseen", **_TASKS}, "temperature": 0.0},
    "sft": {
        "enabled": True, "source": "scripted", "script": "traject.environments.builtin.lookup:demonstrator",
        "script_args": {"arithmetic_error_rate": 0.3, "missed_lookup_rate": 0.15, "max_price": 4},
        "tasks": {"split": "train", "n": 1000, "seed": 1, "combos": "seen", **_TASKS},
        "steps": 300, "batch_size": 16, "lr": 3.0e-3,
    },
    "rollout": {"group_size": 8, "tasks_per_step": 8, "temperature": 1.0, "max_new_tokens": 48},
    "algorithm": {"advantage": "grpo", "clip_low": 0.2, "clip_high": 0.28, "track_ref_kl": True},
    "optim": {"lr": 5.0e-4, "grad_clip": 1.0, "schedule": "cosine", "min_lr_ratio": 0.2},
    "trainer": {"steps": 30, "seed": 0, "out_dir": "runs/quickstart", "checkpoint_every": 0},
}

PHASES = {"sft_all": "(a) SFT, all demonstrations", "sft_success": "(b) SFT, successful only (RFT)",
          "rl": "(c) best SFT + GRPO"}


def quickstart_config(*, out: str | Path = "runs/quickstart", seed: int = 0, steps: int | None = None,
                      overrides: list[str] | None = None) -> TrainConfig:
    """The quickstart's config, with the CLI's options and any ``key=value`` overrides."""
    from traject.trainers.config import apply_overrides

    data = json.loads(json.dumps(QUICKSTART))
    data["trainer"]["out_dir"] = str(out)
    data["trainer"]["seed"] = seed
    data["model"]["tiny"]["seed"] = seed
    if steps is not None:
        data["trainer"]["steps"] = steps
    if overrides:
        data = apply_overrides(data, overrides)
    return config_from_dict(data, source="quickstart" + (" (with --set overrides)" if overrides else ""))


# --- results ------------------------------------------------------------------------------------


class PhaseResult(BaseModel):
    """One row of the comparison: held-out success of one model, greedy and sampled."""

    model_config = ConfigDict(extra="forbid")

    name: str
    label: str
    greedy: Estimate
    sampled_pass1: Estimate
    sampled_pass_k: Estimate
    k: int
    lookups_per_episode: float   # greedy episodes
    submitted_rate: float        # greedy episodes that ended with a submit


def _success_groups(trajs: Sequence[Trajectory]) -> dict[str, list[float]]:
    groups: dict[str, list[float]] = {}
    for t in trajs:
        if t.status is not Status.INFRA_ERROR:
            groups.setdefault(t.task_id, []).append(float(t.success))
    return groups


def phase_result(name: str, greedy: Sequence[Trajectory], sampled: Sequence[Trajectory], k: int,
                 *, seed: int = 0) -> PhaseResult:
    per_task = _success_groups(sampled)
    pass_k = [[pass_at_k(len(v), int(sum(v)), k)] for v in per_task.values() if len(v) >= k]
    scored = [t for t in greedy if t.status is not Status.INFRA_ERROR]
    lookups = [sum(1 for s in t.steps for c in s.action.tool_calls if c.name == "lookup") for t in scored]
    submitted = [any(c.name == "submit" for s in t.steps for c in s.action.tool_calls) for t in scored]
    empty = Estimate(mean=0.0, low=0.0, high=0.0, n=0, tasks=0)
    return PhaseResult(
        name=name, label=PHASES.get(name, name),
        greedy=bootstrap_mean(list(_success_groups(greedy).values()), seed=seed) or empty,
        sampled_pass1=bootstrap_mean(list(per_task.values()), seed=seed) or empty,
        sampled_pass_k=bootstrap_mean(pass_k, seed=seed) or empty, k=k,
        lookups_per_episode=sum(lookups) / max(len(lookups), 1),
        submitted_rate=sum(submitted) / max(len(submitted), 1))


class RewardTrend(BaseModel):
    """The training reward over the last third of the RL steps: a least-squares line through
    the per-step mean rewards. ``falls`` when its slope is below zero by more than twice its
    standard error (a fall the step-to-step noise does not explain)."""

    model_config = ConfigDict(extra="forbid")

    steps: int
    first_third_mean: float
    last_third_mean: float
    last_third_slope: float          # reward per step
    last_third_slope_se: float
    last_third_change: float         # slope x (steps in the last third - 1)
    falls: bool


def reward_trend(rewards: Sequence[float]) -> RewardTrend | None:
    n = len(rewards)
    if n < 6:
        return None
    third = n // 3
    tail = list(rewards[n - third:])
    xs = list(range(len(tail)))
    mx, my = sum(xs) / len(xs), sum(tail) / len(tail)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, tail, strict=True)) / sxx
    resid = [y - (my + slope * (x - mx)) for x, y in zip(xs, tail, strict=True)]
    se = (sum(r * r for r in resid) / max(len(tail) - 2, 1) / sxx) ** 0.5
    return RewardTrend(steps=n, first_third_mean=sum(rewards[:third]) / third, last_third_mean=my,
                       last_third_slope=slope, last_third_slope_se=se, last_third_change=slope * (len(tail) - 1),
                       falls=slope < -2 * se)


class QuickstartReport(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    seed: int
    out_dir: str
    heldout: dict[str, Any]
    rows: dict[str, PhaseResult]
    best_sft: str
    selection: dict[str, float]      # validation-split greedy success of each SFT baseline
    gain_over_best_sft_points: float
    gain_over_rl_start_points: float
    train_rewards: list[float]
    reward_trend: RewardTrend | None
    seconds: float
    plot: str | None = None

    def table(self) -> Any:
        """The comparison as a rich Table (what ``traject quickstart`` prints)."""
        from rich.table import Table

        h = self.heldout
        k = next(iter(self.rows.values())).k
        table = Table(title=f"held-out lookup tasks (n={h['n']}, unseen item-quantity pairings), seed {self.seed}")
        for col in ("", "greedy success [95% CI]", "sampled T=1 pass@1 [95% CI]", f"pass@{k} [95% CI]",
                    "lookups / ep", "submitted"):
            table.add_column(col)
        for r in self.rows.values():
            label = r.label + (" *" if r.name == self.best_sft else "")
            table.add_row(label, _fmt(r.greedy), _fmt(r.sampled_pass1), _fmt(r.sampled_pass_k),
                          f"{r.lookups_per_episode:.2f}", f"{r.submitted_rate:.2f}")
        return table

    def summary_lines(self) -> list[str]:
        chosen_by = ", ".join(f"{PHASES[n].split(' ')[0]} {v:.3f}" for n, v in self.selection.items())
        lines = [f"* RL started from the better SFT baseline on the validation split ({PHASES[self.best_sft]}; "
                 f"validation greedy success {chosen_by}).",
                 f"RL vs best SFT baseline: {self.gain_over_best_sft_points:+.1f} points of held-out greedy success "
                 f"(vs its own SFT start: {self.gain_over_rl_start_points:+.1f})."]
        t = self.reward_trend
        if t is not None:
            lines.append(f"Training reward: first third {t.first_third_mean:.3f}, last third {t.last_third_mean:.3f}; "
                         f"fitted change over the last third {t.last_third_change:+.3f} "
                         f"({'falls' if t.falls else 'does not fall'}).")
        return lines


def _fmt(e: Estimate) -> str:
    return f"{e.mean:.3f} [{e.low:.3f}, {e.high:.3f}]"


# --- the run ------------------------------------------------------------------------------------


def phase_config(config: TrainConfig, out: Path, **changes: Any) -> TrainConfig:
    """``config`` for one phase run in ``out``, with ``section__field=value`` changes."""
    data = config.model_dump(mode="json")
    data["trainer"]["out_dir"] = str(out)
    for dotted, value in changes.items():
        section, field = dotted.split("__")
        data[section][field] = value
    return config_from_dict(data, source="quickstart")


async def sft_baseline(config: TrainConfig, out: Path, *, only_successful: bool,
                       log: Callable[[str], None] = print) -> LocalTrainer:
    """Baseline (a) (``only_successful=False``) or (b): the config's SFT phase alone, in
    ``out``; the returned trainer holds the model."""
    cfg = phase_config(config, out, sft__only_successful=only_successful, trainer__steps=0)
    trainer = LocalTrainer(cfg, log_fn=log)
    trainer.setup()
    await trainer.warm_start()
    return trainer


def validation_split(config: TrainConfig) -> dict[str, Any]:
    """The held-out tasks' generator options on the ``validation`` split (its own random
    stream): what chooses RL's start and tunes it, so the test tasks choose nothing."""
    return {**dict(config.eval.tasks), "split": "validation"}


def validation_tasks(trainer: LocalTrainer) -> list[Task]:
    return trainer._tasks(validation_split(trainer.config), None)


async def _sampled(trainer: LocalTrainer, k: int, n_tasks: int) -> list[Trajectory]:
    trajs = await trainer.rollout(trainer.eval_tasks[:n_tasks], group_size=k, seed=trainer.config.trainer.seed * 7_919 + 5,
                                  policy=trainer.policy)
    for t in trajs:
        t.info["phase"] = "eval:sampled"
    trainer._write_trajectories(trajs)
    return trajs


async def _run(config: TrainConfig, k: int, sampled_tasks: int, log: Callable[[str], None]) -> QuickstartReport:
    t0 = time.perf_counter()
    out = Path(config.trainer.out_dir)
    for name in PHASES:  # a fresh comparison each time: the phases are cheap
        shutil.rmtree(out / name, ignore_errors=True)
    seed = config.trainer.seed
    rows: dict[str, PhaseResult] = {}
    selection: dict[str, float] = {}
    trainers: dict[str, LocalTrainer] = {}
    for name, only_successful in (("sft_all", False), ("sft_success", True)):
        log(f"--- {PHASES[name]}")
        trainer = await sft_baseline(config, out / name, only_successful=only_successful, log=log)
        greedy = await trainer.evaluate(name)
        selection[name] = (await trainer.evaluate(f"{name}:validation", validation_tasks(trainer))).success_rate
        rows[name] = phase_result(name, greedy.trajectories, await _sampled(trainer, k, sampled_tasks), k, seed=seed)
        trainer.metrics.close()
        trainers[name] = trainer
    best = max(("sft_all", "sft_success"), key=lambda n: selection[n])
    log(f"--- {PHASES['rl']}, from {PHASES[best]}")
    start = trainers[best]
    rl_cfg = phase_config(config, out / "rl", sft__enabled=False)
    rl = LocalTrainer(rl_cfg, model=copy.deepcopy(start.model), tokenizer=start.tokenizer, log_fn=log)
    result = await rl.arun()
    final = result.evals["final"].trajectories if "final" in result.evals else []
    rows["rl"] = phase_result("rl", final, await _sampled(rl, k, sampled_tasks), k, seed=seed)
    rewards = [r["reward/mean"] for r in read_metrics(out / "rl" / "metrics.jsonl") if "reward/mean" in r]
    initial = result.evals.get("initial")
    start_success = initial.success_rate if initial is not None else rows[best].greedy.mean
    plot = plot_reward_curve(out / "rl" / "metrics.jsonl", out / "reward_curve.png",
                             title=f"GRPO on lookup after SFT (tiny model, CPU, seed {seed})")
    eval_tasks = dict(config.eval.tasks)
    report = QuickstartReport(
        seed=seed, out_dir=str(out), heldout={**eval_tasks, "n": len(start.eval_tasks), "sampled_tasks": min(sampled_tasks, len(start.eval_tasks))},
        rows=rows, best_sft=best, selection=selection,
        gain_over_best_sft_points=round(100 * (rows["rl"].greedy.mean - max(rows["sft_all"].greedy.mean,
                                                                           rows["sft_success"].greedy.mean)), 1),
        gain_over_rl_start_points=round(100 * (rows["rl"].greedy.mean - start_success), 1),
        train_rewards=rewards, reward_trend=reward_trend(rewards), seconds=round(time.perf_counter() - t0, 1),
        plot=str(plot) if plot else None)
    (out / "quickstart.json").write_text(report.model_dump_json(indent=2))
    return report


def run_quickstart(config: TrainConfig, *, k: int = 4, sampled_tasks: int = 100,
                   log_fn: Callable[[str], None] = print) -> QuickstartReport:
    """Both SFT baselines, GRPO from the better one, and the held-out comparison (see the
    module's docstring): greedy on every held-out task, ``k`` samples at T=1 on the first
    ``sampled_tasks``. Writes ``quickstart.json`` into ``config.trainer.out_dir``."""
    return anyio.run(_run, config, k, sampled_tasks, log_fn)


def plot_reward_curve(metrics_path: str | Path, out_path: str | Path, *, title: str = "") -> Path | None:
    """Training reward per step (and its moving average) with the held-out evaluations, as a
    PNG. Returns None when matplotlib is missing (extra ``plot``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    records = read_metrics(metrics_path)
    steps = [r["step"] for r in records if "reward/mean" in r]
    rewards = [r["reward/mean"] for r in records if "reward/mean" in r]
    successes = {}
    for r in records:
        for key, v in r.items():
            if key.startswith("eval/") and key.endswith("/success"):
                successes[key.split("/")[1]] = (r["step"], v)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.plot([s + 1 for s in steps], rewards, color="#9ab", lw=1, label="train reward (per step)")
    if len(rewards) >= 3:
        w = max(3, len(rewards) // 8)
        avg = [sum(rewards[max(0, i - w + 1):i + 1]) / len(rewards[max(0, i - w + 1):i + 1]) for i in range(len(rewards))]
        ax.plot([s + 1 for s in steps], avg, color="#246", lw=2, label=f"train reward ({w}-step mean)")
    for label, (step, value) in successes.items():
        ax.scatter([step], [value], zorder=3, s=40, label=f"held-out greedy success ({label}): {value:.2f}")
    ax.set_xlabel("RL step")
    ax.set_ylabel("reward / success")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title or "GRPO on lookup (tiny model, CPU)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    out_path = Path(out_path)
    fig.savefig(out_path)
    plt.close(fig)
    return out_path
