"""The quickstart: the README's first command, end to end on a CPU with no downloads.

1. build a tiny causal LM (Qwen2 architecture, ~0.5M parameters) and its BPE tokenizer
   locally (``traject.agents.hf.build_tiny_model``), with the ``compact`` chat template;
2. SFT warm start on demonstrations of the multi-turn ``lookup`` env (look the price up with
   the ``lookup`` tool, then give the total through the ``submit`` tool) from a scripted
   demonstrator with a bad habit: in half of its episodes it states the total in a sentence
   instead of calling ``submit``, which the env does not accept as an answer;
3. GRPO on the same env, rewarded only by the env's outcome reward (the right total,
   submitted);
4. evaluate on held-out tasks (other price lists) after SFT and after RL, greedy decoding;
5. print success rate and mean reward before and after; the run directory holds
   ``metrics.jsonl``, ``reward_curve.png``, ``trajectories.jsonl``, ``config.yaml``,
   ``quickstart.json``, checkpoints and the trained model.

Imitation copies the habit (and a tiny model copies numbers only imperfectly after a short
SFT); RL, rewarded only for the right answer, teaches it to finish through the tool and makes
its copying of the looked-up price more reliable. ``configs/quickstart.yaml`` is the same run
as a config for ``traject train``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traject.trainers.config import TrainConfig, config_from_dict
from traject.trainers.local import LocalTrainer, TrainResult
from traject.trainers.metrics import read_metrics

__all__ = ["QUICKSTART", "QuickstartReport", "plot_reward_curve", "quickstart_config", "run_quickstart"]

_TASKS = {"items_per_order": 1, "max_quantity": 1}

# The quickstart run, as a config dict (``configs/quickstart.yaml`` holds the same).
QUICKSTART: dict[str, Any] = {
    "backend": "local",
    "model": {"tiny": {"seed": 0}, "chat_template": "compact", "max_seq_len": 1024},
    "env": {
        "name": "lookup",
        "config": {"max_turns": 4, "system_prompt": ""},
        "tasks": {"split": "train", "n": 2000, **_TASKS},
    },
    "eval": {"tasks": {"split": "test", "n": 200, **_TASKS}, "temperature": 0.0},
    "sft": {
        "enabled": True, "source": "scripted", "script": "traject.environments.builtin.lookup:sloppy_expert",
        "script_args": {"prose_rate": 0.65},
        "tasks": {"split": "train", "n": 1000, "seed": 1, **_TASKS},
        "epochs": 5, "batch_size": 16, "lr": 3.0e-3,
    },
    "rollout": {"group_size": 8, "tasks_per_step": 8, "temperature": 1.0, "max_new_tokens": 48},
    "algorithm": {"advantage": "grpo", "clip_low": 0.2, "clip_high": 0.28, "track_ref_kl": True},
    "optim": {"lr": 5.0e-4, "grad_clip": 1.0},
    "trainer": {"steps": 30, "seed": 0, "out_dir": "runs/quickstart", "checkpoint_every": 10},
}


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
        for k, v in r.items():
            if k.startswith("eval/") and k.endswith("/success"):
                successes[k.split("/")[1]] = (r["step"], v)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.plot([s + 1 for s in steps], rewards, color="#9ab", lw=1, label="train reward (per step)")
    if len(rewards) >= 3:
        w = max(3, len(rewards) // 8)
        avg = [sum(rewards[max(0, i - w + 1):i + 1]) / len(rewards[max(0, i - w + 1):i + 1]) for i in range(len(rewards))]
        ax.plot([s + 1 for s in steps], avg, color="#246", lw=2, label=f"train reward ({w}-step mean)")
    for label, (step, value) in successes.items():
        ax.scatter([step], [value], zorder=3, s=40, label=f"held-out success ({label}): {value:.2f}")
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


@dataclass
class QuickstartReport:
    out_dir: Path
    seed: int
    before: dict[str, Any]
    after: dict[str, Any]
    seconds: float
    plot: Path | None

    @property
    def success_gain(self) -> float:
        return float(self.after["success_rate"] - self.before["success_rate"])

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "before_rl": self.before, "after_rl": self.after,
                "success_gain_points": round(100 * self.success_gain, 1), "seconds": round(self.seconds, 1),
                "plot": str(self.plot) if self.plot else None}


def run_quickstart(config: TrainConfig, *, log_fn: Any = print) -> QuickstartReport:
    trainer = LocalTrainer(config, log_fn=log_fn)
    result: TrainResult = trainer.run()
    out = Path(config.trainer.out_dir)
    before_label = "sft" if config.sft.enabled else "initial"
    before = result.evals[before_label].summary()
    after = result.evals["final"].summary() if "final" in result.evals else before
    plot = plot_reward_curve(out / "metrics.jsonl", out / "reward_curve.png",
                             title=f"GRPO on lookup after SFT (tiny model, CPU, seed {config.trainer.seed})")
    report = QuickstartReport(out, config.trainer.seed, before, after, result.seconds, plot)
    (out / "quickstart.json").write_text(json.dumps(report.to_json(), indent=2))
    return report
