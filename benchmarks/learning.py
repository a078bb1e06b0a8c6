"""Learning evidence: the quickstart's fair comparison on several seeds.

For each seed, ``traject quickstart``'s run (:func:`traject.trainers.quickstart.run_quickstart`):
(a) SFT on all of an imperfect demonstrator's demonstrations, (b) SFT on its successful ones
only (RFT), (c) the better of the two then GRPO on the env's outcome reward; all three on the
same held-out tasks (unseen item-quantity pairings), greedy and sampled (T=1, pass@1 and
pass@k) success with 95% bootstrap intervals.

Target, on every seed: (c) beats the better of (a) and (b) by at least 10 points of held-out
greedy success, and the training reward does not fall over the last third of the RL run
(least-squares slope not below zero by more than twice its standard error).

    python benchmarks/learning.py --seeds 0 1 2 [--steps N] [--quick] [--out runs/learning]

Writes ``benchmarks/results/learning.json`` (``seeds``, ``min_gain_points_over_best_sft``, the
per-seed reports) and ``benchmarks/results/learning.png``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from traject.trainers.quickstart import PHASES, QuickstartReport, quickstart_config, run_quickstart  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_POINTS = 10.0


def plot(reports: list[QuickstartReport], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), dpi=110)
    for r in reports:
        ax1.plot(range(1, len(r.train_rewards) + 1), r.train_rewards, lw=1.2, label=f"seed {r.seed}")
    ax1.set_xlabel("GRPO step")
    ax1.set_ylabel("training reward (mean over the step's episodes)")
    ax1.set_ylim(-0.02, 1.02)
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    ax1.set_title("training reward")
    names = list(PHASES)
    width = 0.8 / max(len(reports), 1)
    for i, r in enumerate(reports):
        xs = [j + (i - (len(reports) - 1) / 2) * width for j in range(len(names))]
        means = [r.rows[n].greedy.mean for n in names]
        errs = [[max(0.0, r.rows[n].greedy.mean - r.rows[n].greedy.low) for n in names],
                [max(0.0, r.rows[n].greedy.high - r.rows[n].greedy.mean) for n in names]]
        ax2.bar(xs, means, width=width, yerr=errs, capsize=3, label=f"seed {r.seed}")
    ax2.set_xticks(range(len(names)), [PHASES[n] for n in names], fontsize=7)
    ax2.set_ylabel("held-out greedy success (95% CI)")
    ax2.set_ylim(0, 1)
    ax2.grid(alpha=0.3, axis="y")
    ax2.legend(fontsize=8)
    ax2.set_title("held-out success")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _run_one(cfg):  # noqa: ANN001, ANN202 - a top-level function, for worker processes
    return run_quickstart(cfg, log_fn=lambda m: None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=None, help="GRPO steps (default: the quickstart's)")
    ap.add_argument("--quick", action="store_true", help="a short run (fewer tasks and steps) to try the script")
    ap.add_argument("--out", default="runs/learning")
    ap.add_argument("--jobs", type=int, default=1, help="seeds run in parallel processes")
    ap.add_argument("--from-runs", action="store_true",
                    help="do not train: summarise the quickstart.json files already in --out/seed<N>/")
    ap.add_argument("--json", default=str(RESULTS / "learning.json"))
    args = ap.parse_args()
    console = Console(width=160)
    overrides = ["eval.tasks.n=60", "sft.steps=60"] if args.quick else []
    steps = args.steps if args.steps is not None else (6 if args.quick else None)
    t0 = time.perf_counter()
    configs = [quickstart_config(out=Path(args.out) / f"seed{seed}", seed=seed, steps=steps, overrides=overrides)
               for seed in args.seeds]
    if args.from_runs:
        reports = [QuickstartReport.model_validate_json((Path(c.trainer.out_dir) / "quickstart.json").read_text())
                   for c in configs]
    elif args.jobs > 1:  # one process per seed: each run is single-threaded and independent
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            reports = list(pool.map(_run_one, configs))
    else:
        reports = [_run_one(cfg) for cfg in configs]
    for report in reports:
        seed = report.seed
        console.print(report.table())
        for line in report.summary_lines():
            console.print(line, markup=False, highlight=False)
        console.print(f"seed {seed}: {report.seconds:.0f}s")
    gains = [r.gain_over_best_sft_points for r in reports]
    summary = Table(title="RL (c) minus the best SFT baseline, held-out greedy success")
    for col in ("seed", "best SFT", "best SFT greedy", "RL greedy", "gain (points)", "reward falls in last third",
                "seconds"):
        summary.add_column(col)
    for r in reports:
        summary.add_row(str(r.seed), r.best_sft, f"{r.rows[r.best_sft].greedy.mean:.3f}",
                        f"{r.rows['rl'].greedy.mean:.3f}", f"{r.gain_over_best_sft_points:+.1f}",
                        str(r.reward_trend.falls if r.reward_trend else None), f"{r.seconds:.0f}")
    console.print(summary)
    min_gain = min(gains)
    target_met = min_gain >= TARGET_POINTS and all(r.reward_trend is not None and not r.reward_trend.falls
                                                  for r in reports)
    console.print(f"min gain over the best SFT baseline: {min_gain:+.1f} points; target (>= +{TARGET_POINTS:.0f} "
                  f"on every seed, reward not falling): {'met' if target_met else 'NOT met'}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    png = plot(reports, out.with_suffix(".png"))
    out.write_text(json.dumps({
        "seeds": args.seeds,
        "min_gain_points_over_best_sft": min_gain,
        "target_points": TARGET_POINTS,
        "target_met": target_met,
        "quick": args.quick,
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "seconds": round(time.perf_counter() - t0, 1) if not args.from_runs else max(r.seconds for r in reports),
        "plot": str(png) if png else None,
        "per_seed": [json.loads(r.model_dump_json()) for r in reports],
    }, indent=2))
    console.print(f"wrote {out}" + (f" and {png}" if png else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
