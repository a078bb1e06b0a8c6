"""An eval run's results as Markdown (``summary.md``), and as rows shared with the console table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from traject.eval.stats import Estimate

if TYPE_CHECKING:
    from traject.eval.run_dir import EvalResults
    from traject.eval.summary import EvalSummary, Spread


def fmt_estimate(e: Estimate | None, *, pct: bool = False) -> str:
    if e is None:
        return "n/a"
    if pct:
        return f"{100 * e.mean:.1f}% [{100 * e.low:.1f}, {100 * e.high:.1f}]"
    return f"{e.mean:.3f} [{e.low:.3f}, {e.high:.3f}]"


def fmt_spread(s: Spread | None, unit: str = "", digits: int = 1) -> str:
    if s is None:
        return "n/a"
    return f"{s.mean:.{digits}f}{unit} (p50 {s.p50:.{digits}f}, p95 {s.p95:.{digits}f})"


def summary_rows(s: EvalSummary) -> list[tuple[str, str]]:
    """(metric, value) rows: the final table of ``traject eval`` and the Markdown summary."""
    c = s.counts
    rows = [
        ("episodes", f"{c.present} of {c.expected} ({c.missing} missing)" if c.expected else str(c.present)),
        ("scored", str(c.scored)),
        ("infra errors (not scored)", str(c.infra_error)),
    ]
    if c.reward_failed:
        rows.append(("reward failed (not scored)", str(c.reward_failed)))
    if c.cancelled:
        rows.append(("cancelled (not scored)", str(c.cancelled)))
    rows.append(("status", ", ".join(f"{k} {v}" for k, v in sorted(c.by_status.items())) or "n/a"))
    rows.append(("success (95% CI)", fmt_estimate(s.success, pct=True)))
    rows.append(("mean reward (95% CI)", fmt_estimate(s.reward)))
    if s.pass_at_k:
        rows.append(("pass@k", "  ".join(f"@{e.k} {100 * e.value:.1f}%" for e in s.pass_at_k)))
    if s.pass_hat_k:
        rows.append(("pass^k", "  ".join(f"^{e.k} {100 * e.value:.1f}%" for e in s.pass_hat_k)))
    for name, e in s.components.items():
        rows.append((f"reward: {name}", fmt_estimate(e)))
    eff = s.efficiency
    rows += [
        ("turns", fmt_spread(eff.turns)),
        ("tool calls", fmt_spread(eff.tool_calls)),
        ("format errors", fmt_spread(eff.format_errors, digits=2)),
        ("tokens in", fmt_spread(eff.prompt_tokens, digits=0)),
        ("tokens out", fmt_spread(eff.completion_tokens, digits=0)),
    ]
    lat = s.latency
    for phase in ("total", "model", "tools", "user", "reward"):
        spread = getattr(lat, phase)
        if spread is not None and (phase == "total" or spread.total > 0):
            rows.append((f"latency: {phase}", fmt_spread(spread, " s", digits=2)))
    if s.cost is not None:
        rows.append(("estimated cost", f"${s.cost.total_usd:.4f} (${s.cost.per_episode_usd:.6f} per episode)"))
    return rows


def summary_markdown(results: EvalResults) -> str:
    cfg, s = results.config, results.summary
    lines = [f"# Eval: {cfg.label}", ""]
    lines.append(f"- env: `{cfg.env}`" + (f" with `{cfg.env_config}`" if cfg.env_config else ""))
    lines.append(f"- policy: `{cfg.policy.label}` ({cfg.policy.kind})")
    lines.append(f"- tasks: {s.counts.expected // max(cfg.samples, 1)} x {cfg.samples} samples; seed {cfg.seed}")
    if not results.complete:
        lines.append(f"- **incomplete**: {s.counts.missing} episodes missing (resume with `traject eval --out RUN --resume`)")
    lines += ["", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in summary_rows(s)]
    lines += ["", "Intervals are 95% percentile bootstrap intervals over tasks "
              f"(seed {s.bootstrap_seed}); pass@k is the unbiased estimator, pass^k the chance that "
              "all k samples succeed. Infra errors are counted apart and never scored.", ""]
    return "\n".join(lines)
