"""Compare eval runs: one table, a Markdown summary and a Pareto plot of success against tokens
(``traject compare RUN...``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from traject.eval.config import ConfigError
from traject.eval.markdown import fmt_estimate
from traject.eval.run_dir import TRAJECTORIES, EvalResults, RunDir, write_json_atomic
from traject.eval.stats import Estimate


class RunPoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run: str
    label: str
    episodes: int
    scored: int
    infra_errors: int
    success: Estimate | None
    reward: Estimate | None
    pass_at_k: dict[int, float] = Field(default_factory=dict)
    mean_tokens: float | None
    mean_turns: float | None
    mean_latency_s: float | None
    cost_per_episode_usd: float | None
    pareto: bool = False


class Comparison(BaseModel):
    model_config = ConfigDict(extra="forbid")

    runs: list[RunPoint]
    # Why the numbers may not be comparable: mixed envs or task sets, a run given twice.
    warnings: list[str] = Field(default_factory=list)


def load_results(path: str | Path) -> EvalResults:
    """A run's results, recomputed from its trajectories when they are newer than results.json."""
    from traject.eval.runner import write_results

    run_dir = RunDir(path)
    results = run_dir.read_results()
    store = run_dir.file(TRAJECTORIES)
    stale = results is None or (store.exists() and store.stat().st_mtime > run_dir.file("results.json").stat().st_mtime)
    if stale:
        config = run_dir.read_config()
        from traject.eval.task_file import load_task_file

        results = write_results(run_dir, config, load_task_file(run_dir.file("tasks.jsonl")))
    assert results is not None
    return results


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For (cost, value) points: True where no other point is at least as cheap and at least as
    good, and strictly better in one of the two."""
    out = []
    for i, (c, v) in enumerate(points):
        dominated = any((c2 <= c and v2 >= v) and (c2 < c or v2 > v) for j, (c2, v2) in enumerate(points) if j != i)
        out.append(not dominated)
    return out


def _task_set(path: Path) -> tuple[str, ...]:
    from traject.eval.run_dir import TASKS

    f = RunDir(path).file(TASKS)
    if not f.exists():
        return ()
    import json

    return tuple(sorted(json.loads(line)["id"] for line in f.read_text(encoding="utf-8").splitlines() if line.strip()))


def compare_runs(paths: Sequence[str | Path]) -> Comparison:
    if not paths:
        raise ConfigError("compare needs at least one run directory")
    warnings: list[str] = []
    seen: dict[Path, str] = {}
    unique: list[str | Path] = []
    for p in paths:
        key = Path(p).resolve()
        if key in seen:
            warnings.append(f"{p} is the same run as {seen[key]}: it is shown once")
            continue
        seen[key] = str(p)
        unique.append(p)
    points: list[RunPoint] = []
    envs: dict[str, list[str]] = {}
    task_sets: dict[tuple[tuple[str, ...], int], list[str]] = {}
    for p in unique:
        r = load_results(p)
        envs.setdefault(r.config.env, []).append(str(p))
        task_sets.setdefault((_task_set(Path(p)), r.config.samples), []).append(str(p))
        s = r.summary
        points.append(RunPoint(
            run=str(p), label=r.config.label, episodes=s.counts.present, scored=s.counts.scored,
            infra_errors=s.counts.infra_error, success=s.success, reward=s.reward,
            pass_at_k={e.k: e.value for e in s.pass_at_k}, mean_tokens=s.mean_tokens,
            mean_turns=s.efficiency.turns.mean if s.efficiency.turns else None,
            mean_latency_s=s.latency.total.mean if s.latency.total else None,
            cost_per_episode_usd=s.cost.per_episode_usd if s.cost else None,
        ))
    scorable = [i for i, p in enumerate(points) if p.success is not None and p.mean_tokens is not None]
    front = pareto_front([(points[i].mean_tokens or 0.0, points[i].success.mean) for i in scorable])  # type: ignore[union-attr]
    for i, on in zip(scorable, front, strict=True):
        points[i].pareto = on
    if len(envs) > 1:
        warnings.append("the runs are on different envs, so their numbers are not comparable: "
                        + "; ".join(f"{env}: {', '.join(runs)}" for env, runs in envs.items()))
    elif len(task_sets) > 1:
        warnings.append("the runs differ in their tasks or samples per task, so their numbers are not "
                        "comparable: " + "; ".join(f"{len(ids)} tasks x {k}: {', '.join(runs)}"
                                                   for (ids, k), runs in task_sets.items()))
    return Comparison(runs=points, warnings=warnings)


def comparison_rows(c: Comparison) -> tuple[list[str], list[list[str]]]:
    ks = sorted({k for p in c.runs for k in p.pass_at_k})
    header = ["run", "success (95% CI)", "mean reward (95% CI)", *[f"pass@{k}" for k in ks],
              "tokens/episode", "turns", "latency s", "cost/episode", "infra errors", "Pareto"]
    rows = []
    for p in c.runs:
        rows.append([
            p.label, fmt_estimate(p.success, pct=True), fmt_estimate(p.reward),
            *[f"{100 * p.pass_at_k[k]:.1f}%" if k in p.pass_at_k else "-" for k in ks],
            f"{p.mean_tokens:.0f}" if p.mean_tokens is not None else "-",
            f"{p.mean_turns:.2f}" if p.mean_turns is not None else "-",
            f"{p.mean_latency_s:.2f}" if p.mean_latency_s is not None else "-",
            f"${p.cost_per_episode_usd:.5f}" if p.cost_per_episode_usd is not None else "-",
            str(p.infra_errors), "yes" if p.pareto else "",
        ])
    return header, rows


def comparison_markdown(c: Comparison, plot: str | None) -> str:
    header, rows = comparison_rows(c)
    lines = ["# Comparison", ""]
    lines += [f"> **Warning:** {w}" for w in c.warnings]
    lines += [""] if c.warnings else []
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", "Runs: " + ", ".join(f"`{p.run}`" for p in c.runs), ""]
    if plot:
        lines += [f"![success against tokens]({plot})", ""]
    lines.append("Pareto: no other run has at least the success with at most the tokens per episode.")
    return "\n".join(lines) + "\n"


def pareto_plot(c: Comparison, path: Path) -> bool:
    """Success against mean tokens per episode, with 95% intervals and the Pareto front.
    Needs matplotlib (the ``plot`` extra); returns False when there is nothing to plot."""
    pts = [p for p in c.runs if p.success is not None and p.mean_tokens is not None]
    if not pts:
        return False
    try:
        import matplotlib
    except ImportError as exc:
        raise ConfigError("the Pareto plot needs matplotlib: pip install 'traject[plot]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for p in pts:
        s = p.success
        assert s is not None and p.mean_tokens is not None
        ax.errorbar(p.mean_tokens, 100 * s.mean, yerr=[[100 * (s.mean - s.low)], [100 * (s.high - s.mean)]],
                    fmt="o", color="tab:red" if p.pareto else "tab:gray", capsize=3)
        ax.annotate(p.label, (p.mean_tokens, 100 * s.mean), textcoords="offset points", xytext=(6, 4), fontsize=8)
    front = sorted((p for p in pts if p.pareto), key=lambda p: p.mean_tokens or 0.0)
    if len(front) > 1:
        ax.plot([p.mean_tokens for p in front], [100 * p.success.mean for p in front],  # type: ignore[union-attr]
                color="tab:red", lw=1, ls="--", label="Pareto front")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("tokens per episode (in + out)")
    ax.set_ylabel("success, % (95% CI)")
    ax.set_title("success against tokens")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def write_comparison(paths: Sequence[str | Path], out: str | Path) -> tuple[Comparison, Path | None]:
    """Write comparison.json, comparison.md and (for two runs or more) pareto.png into ``out``."""
    c = compare_runs(paths)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plot = None
    if len(c.runs) > 1 and pareto_plot(c, out / "pareto.png"):
        plot = out / "pareto.png"
    write_json_atomic(out / "comparison.json", c.model_dump_json(indent=2))
    write_json_atomic(out / "comparison.md", comparison_markdown(c, plot.name if plot else None))
    return c, plot
