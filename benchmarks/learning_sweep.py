"""Which GRPO settings move the quickstart's held-out success? A sweep on the validation split.

``benchmarks/learning.py`` reports the quickstart's fixed settings on the test tasks. This
script is the tuning step that should come before it: for each seed it trains the two SFT
baselines (exactly as ``traject quickstart`` does), picks RL's start by greedy success on the
``validation`` split, then runs GRPO once per variant (a named list of ``--set``-style
overrides of the quickstart config) from that same start, and records greedy success on the
validation split every ``--eval-every`` steps and the training reward. The test tasks are
never evaluated here, so a variant chosen from this table does not leak into the reported
comparison.

    python benchmarks/learning_sweep.py --seeds 0 1 --jobs 2
    python benchmarks/learning_sweep.py --seeds 0 --variants quickstart "lr 1e-4" --sft-set sft.steps=600
    python benchmarks/learning_sweep.py --seeds 0 --steps 2 --eval-every 1 --sft-set sft.steps=5 eval.tasks.n=10  # smoke

Writes ``benchmarks/results/learning_sweep.json``: ``seeds``, ``variants`` (name -> overrides),
``runs`` (per seed and variant: validation success by step, training-reward thirds,
seconds), ``best_variant`` and ``best_mean_gain_points`` (the largest mean, over seeds, of
final minus initial validation greedy success).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"

VARIANTS: dict[str, list[str]] = {
    "quickstart": [],
    "lr 1e-4": ["optim.lr=1e-4"],
    "lr 1e-3, warmup 5": ["optim.lr=1e-3", "optim.warmup_steps=5"],
    "4 mini-batches": ["algorithm.mini_batches=4"],
    "T=0.7": ["rollout.temperature=0.7"],
    "kl 0.04": ["algorithm.kl_coef=0.04"],
}


def _run_seed(job: tuple[int, list[str], list[str], int, int | None, str]) -> list[dict[str, Any]]:
    import anyio

    return anyio.run(_seed, *job)


async def _seed(seed: int, variants: list[str], sft_set: list[str], eval_every: int, steps: int | None,
                out: str) -> list[dict[str, Any]]:
    from traject.trainers.local import LocalTrainer
    from traject.trainers.metrics import read_metrics
    from traject.trainers.quickstart import (
        phase_config,
        quickstart_config,
        sft_baseline,
        validation_split,
        validation_tasks,
    )

    root = Path(out) / f"seed{seed}"
    base = quickstart_config(out=root, seed=seed, overrides=["trainer.threads=1", *sft_set])
    log = lambda s: None  # noqa: E731
    starts = {name: await sft_baseline(base, root / name, only_successful=only, log=log)
              for name, only in (("sft_all", False), ("sft_success", True))}
    selection = {name: (await t.evaluate("validation", validation_tasks(t))).success_rate for name, t in starts.items()}
    best = max(selection, key=lambda n: selection[n])
    start = starts[best]
    runs = []
    for name in variants:
        t0 = time.perf_counter()
        variant = quickstart_config(out=root, seed=seed, steps=steps,
                                    overrides=["trainer.threads=1", *sft_set, *VARIANTS[name]])
        cfg = phase_config(variant, root / f"rl_{name.replace(' ', '_').replace(',', '')}", sft__enabled=False,
                           eval__every=eval_every, eval__tasks=validation_split(variant))
        shutil.rmtree(cfg.trainer.out_dir, ignore_errors=True)
        rl = LocalTrainer(cfg, model=copy.deepcopy(start.model), tokenizer=start.tokenizer, log_fn=log)
        await rl.arun()
        records = read_metrics(Path(cfg.trainer.out_dir) / "metrics.jsonl")
        rewards = [r["reward/mean"] for r in records if "reward/mean" in r]
        curve = {int(r["step"]): v for r in records for k, v in r.items()
                 if k.startswith("eval/") and k.endswith("/success")}
        third = max(len(rewards) // 3, 1)
        runs.append({"seed": seed, "variant": name, "start": best, "selection": selection,
                     "validation_success": curve,
                     "gain_points": round(100 * (curve[max(curve)] - curve[min(curve)]), 1),
                     "reward_first_third": sum(rewards[:third]) / third,
                     "reward_last_third": sum(rewards[-third:]) / third,
                     "seconds": round(time.perf_counter() - t0, 1)})
    return runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--sft-set", nargs="*", default=[], help="overrides of the SFT baselines (e.g. sft.steps=600)")
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--steps", type=int, default=None, help="GRPO steps (default: the quickstart's)")
    ap.add_argument("--jobs", type=int, default=1, help="seeds run in parallel processes")
    ap.add_argument("--out", default="runs/learning_sweep")
    ap.add_argument("--json", default=str(RESULTS / "learning_sweep.json"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    jobs = [(seed, args.variants, args.sft_set, args.eval_every, args.steps, args.out) for seed in args.seeds]
    if args.jobs > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            runs = [r for rs in pool.map(_run_seed, jobs) for r in rs]
    else:
        runs = [r for job in jobs for r in _run_seed(job)]
    steps = sorted({s for r in runs for s in r["validation_success"]})
    table = Table(title="GRPO variants from the quickstart's SFT start: greedy success on the validation split")
    for col in ("seed", "variant", "start", *[f"step {s}" for s in steps], "gain (points)",
                "train reward 1st / last third", "seconds"):
        table.add_column(col)
    for r in runs:
        table.add_row(str(r["seed"]), r["variant"], r["start"],
                      *[f"{r['validation_success'].get(s, float('nan')):.3f}" for s in steps],
                      f"{r['gain_points']:+.1f}", f"{r['reward_first_third']:.3f} / {r['reward_last_third']:.3f}",
                      f"{r['seconds']:.0f}")
    console = Console(width=180)
    console.print(table)
    means = {v: sum(r["gain_points"] for r in runs if r["variant"] == v) / len(args.seeds) for v in args.variants}
    best = max(means, key=lambda v: means[v])
    console.print("mean gain over seeds: " + ", ".join(f"{v} {g:+.1f}" for v, g in means.items()) + f"; best: {best}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "seeds": args.seeds, "variants": {v: VARIANTS[v] for v in args.variants}, "sft_set": args.sft_set,
        "split": "validation", "best_variant": best, "best_mean_gain_points": round(means[best], 1),
        "mean_gain_points": {v: round(g, 1) for v, g in means.items()},
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "seconds": round(time.perf_counter() - t0, 1), "runs": runs}, indent=2))
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
