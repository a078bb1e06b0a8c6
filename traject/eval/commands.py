"""What ``traject eval``, ``traject compare`` and ``traject view`` do, callable from Python
(the CLI only parses flags into these)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
from rich.console import Console

from traject.eval.config import ConfigError, EvalConfig, PolicyConfig, load_config_file, validate_config
from traject.eval.run_dir import RunDir


@dataclass
class EvalFlags:
    """``traject eval`` flags; None means not given (the config file or the recorded run decides)."""

    env: str | None = None
    policy: str | None = None
    model: str | None = None
    base_url: str | None = None
    tool_format: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    tasks: str | None = None
    split: str | None = None
    n: int | None = None
    task_seed: int | None = None
    samples: int | None = None
    concurrency: int | None = None
    seed: int | None = None
    timeout: float | None = None
    env_config: list[str] = field(default_factory=list)
    config: str | None = None
    out: str | None = None
    resume: bool = False
    retry_infra: bool | None = None
    price_in: float | None = None
    price_out: float | None = None
    name: str | None = None
    quiet: bool = False
    progress_every: float = 30.0
    check: bool = True


def _error(console: Console, message: str) -> None:
    console.print(f"error: {message}", style="red", markup=False, highlight=False)


def _note(console: Console, message: str) -> None:
    console.print(message, style="yellow", markup=False, highlight=False)


def _parse_env_config(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--env-config {item!r}: expected KEY=VALUE, e.g. --env-config max_turns=8")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _merge(base: dict[str, Any], flags: EvalFlags) -> dict[str, Any]:
    data = json.loads(json.dumps(base))  # a deep copy
    policy = data.setdefault("policy", {})
    tasks = data.setdefault("tasks", {})

    def put(target: dict[str, Any], key: str, value: Any) -> None:
        if value is not None:
            target[key] = value

    if flags.policy is not None:
        spec = PolicyConfig.parse_spec(flags.policy)
        policy["kind"], policy["target"] = spec.kind, spec.target
    for key in ("model", "base_url", "tool_format", "temperature", "max_tokens"):
        put(policy, key, getattr(flags, key))
    put(tasks, "file", flags.tasks)
    put(tasks, "split", flags.split)
    put(tasks, "n", flags.n)
    put(tasks, "seed", flags.task_seed)
    for key, value in (("env", flags.env), ("samples", flags.samples), ("concurrency", flags.concurrency),
                       ("seed", flags.seed), ("episode_timeout_s", flags.timeout),
                       ("retry_infra", flags.retry_infra), ("name", flags.name)):
        put(data, key, value)
    if flags.env_config:
        data.setdefault("env_config", {}).update(_parse_env_config(flags.env_config))
    if policy.get("kind") == "gold":  # a gold replay has no model on either side (customer_service)
        data.setdefault("env_config", {}).setdefault("user", "gold")
    if flags.price_in is not None or flags.price_out is not None:
        pricing = data.setdefault("pricing", None) or {}
        put(pricing, "input_per_mtok", flags.price_in)
        put(pricing, "output_per_mtok", flags.price_out)
        data["pricing"] = pricing
    return data


def build_config(flags: EvalFlags) -> tuple[EvalConfig, Path]:
    """The config and run directory that the flags describe (for --resume: the recorded config
    with the flags on top, checked later against the recording)."""
    base: dict[str, Any] = {}
    where = "command line"
    if flags.resume:
        if flags.out is None:
            raise ConfigError("--resume needs --out RUN_DIR: the run to continue")
        base = RunDir(flags.out).read_config().model_dump(mode="json")
    if flags.config:
        base.update(load_config_file(flags.config))
        where = f"{flags.config} (with command-line flags)"
    data = _merge(base, flags)
    if "env" not in data:
        raise ConfigError("no env given: pass --env NAME (see `traject envs`) or a --config file with 'env'")
    config = validate_config(data, where)
    out = Path(flags.out) if flags.out else Path("runs") / _default_run_name(config)
    return config, out


def _default_run_name(config: EvalConfig) -> str:
    label = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{config.env}-{config.policy.label}").strip("-")
    return f"{label}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def eval_command(flags: EvalFlags, console: Console, argv: list[str] | None = None,
                 err_console: Console | None = None) -> int:
    """Run ``traject eval``; returns the exit status: 0 done, 1 incomplete or nothing could be
    scored (the most common cause is printed), 2 bad input, 130 interrupted. Errors go to
    ``err_console`` (default: ``console``)."""
    out_console = console
    console = err_console or console
    from traject.agents.policy import PolicyError
    from traject.eval.console import LineProgress, RichProgress, summary_table
    from traject.eval.runner import infra_causes, run_eval

    try:
        config, out = build_config(flags)
    except ConfigError as exc:
        _error(console, str(exc))
        return 2
    progress: Any = None
    if not flags.quiet:
        progress = (RichProgress(out_console, description=config.label) if out_console.is_terminal
                    else LineProgress(out_console, description=config.label, every_s=flags.progress_every))

    async def go() -> Any:
        return await run_eval(config, out, resume=flags.resume, progress=progress, argv=argv,
                              check_endpoint=flags.check)

    try:
        if progress is not None:
            with progress:
                results = anyio.run(go)
        else:
            results = anyio.run(go)
    except ConfigError as exc:
        _error(console, str(exc))
        return 2
    except PolicyError as exc:  # the endpoint check failed: nothing was written
        _error(console, f"the policy's endpoint failed its check: {exc}")
        console.print("(--no-check skips this check)", markup=False, highlight=False)
        return 1
    except KeyboardInterrupt:
        _note(console, f"interrupted: finished episodes are saved in {out}; "
              f"continue with: traject eval --out {out} --resume")
        return 130
    out_console.print(summary_table(results.summary, title=f"{config.label}  ({out})"))
    counts = results.summary.counts
    causes = infra_causes(RunDir(out))
    if causes:
        cause, count = causes[0]
        unscored = sum(n for _, n in causes)
        _note(console, f"{unscored} episode(s) could not be scored; most common cause ({count}x): {cause}")
        if config.retry_infra is False:
            console.print(f"after fixing it, re-run them with: traject eval --out {out} --resume --retry-infra",
                          markup=False, highlight=False)
    if counts.present and counts.scored == 0:
        _error(console, f"no episode of {counts.present} could be scored")
        return 1
    if not results.complete:
        _note(console, f"{counts.missing} episodes missing: traject eval --out {out} --resume")
        return 1
    return 0


def compare_command(runs: list[str], out: str, console: Console) -> int:
    from rich.table import Table

    from traject.eval.compare import comparison_rows, write_comparison

    try:
        comparison, plot = write_comparison(runs, out)
    except ConfigError as exc:
        _error(console, str(exc))
        return 2
    header, rows = comparison_rows(comparison)
    table = Table(title="comparison")
    for h in header:
        table.add_column(h)
    for r in rows:
        table.add_row(*r)
    console.print(table)
    for warning in comparison.warnings:
        _note(console, f"warning: {warning}")
    console.print(f"wrote {out}/comparison.md" + (f" and {plot}" if plot else ""), highlight=False, markup=False)
    return 0


def view_command(run: str, out: str | None, console: Console) -> int:
    from traject.eval.view import write_report

    try:
        index = write_report(run, out)
    except ConfigError as exc:
        _error(console, str(exc))
        return 2
    console.print(f"wrote {index}", highlight=False)
    return 0
