"""The ``traject`` command. Each command parses its flags and calls the library: no logic
lives here that a library user would also need."""

from __future__ import annotations

import json
import sys

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help="traject: RL for multi-turn tool-using LLM agents.")
console = Console()


@app.callback()
def _root() -> None:
    """traject: RL for multi-turn tool-using LLM agents."""


@app.command()
def envs(schemas: bool = typer.Option(False, "--schemas", help="Print each tool's JSON schema.")) -> None:
    """List the registered envs and tools."""
    from traject.environments.registry import registry as env_registry
    from traject.tools.registry import registry as tool_registry

    table = Table(title="envs")
    table.add_column("name")
    table.add_column("tools")
    table.add_column("description")
    for name, entry in env_registry.entries().items():
        try:
            env = entry.make()
            tools = env.tools
        except Exception as exc:  # noqa: BLE001 - listing must not die on one env's missing extra
            table.add_row(name, f"[red]unavailable: {exc}[/red]", entry.description)
            continue
        table.add_row(name, ", ".join(t.name for t in tools), entry.description)
        if schemas:
            for t in tools:
                console.print_json(json.dumps(t.to_openai()))
    console.print(table)
    plugin_tools = tool_registry.items()
    if plugin_tools:
        t2 = Table(title="tool plugins (entry points 'traject.tools')")
        t2.add_column("name")
        t2.add_column("kind")
        for name, provider in plugin_tools.items():
            t2.add_row(name, type(provider).__name__ if not isinstance(provider, type) else f"toolset {provider.__name__}")
        console.print(t2)


@app.command("eval")
def eval_(
    env: str = typer.Option(None, "--env", "-e", help="Registered env name (see `traject envs`)."),
    policy: str = typer.Option(None, "--policy", help="openai (default) | scripted:MODULE:ATTR | hf:PATH | a plugin kind."),
    model: str = typer.Option(None, "--model", "-m", help="Model name at the endpoint (policy openai)."),
    base_url: str = typer.Option(None, "--base-url", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1."),
    tool_format: str = typer.Option(None, "--tool-format", help="Render tools into the prompt in this format (hermes) instead of native tools."),
    temperature: float = typer.Option(None, "--temperature"),
    max_tokens: int = typer.Option(None, "--max-tokens"),
    tasks: str = typer.Option(None, "--tasks", help="A JSONL file of Task records (else the env's own tasks)."),
    split: str = typer.Option(None, "--split", help="Split of the env's own tasks."),
    n: int = typer.Option(None, "--num-tasks", "-n", help="Number of tasks."),
    task_seed: int = typer.Option(None, "--task-seed", help="Seed of generated tasks."),
    samples: int = typer.Option(None, "--samples", "-k", help="Samples per task (for pass@k)."),
    concurrency: int = typer.Option(None, "--concurrency", "-c", help="Episodes in flight."),
    seed: int = typer.Option(None, "--seed", help="Base seed of episodes and bootstrap intervals."),
    timeout: float = typer.Option(None, "--timeout", help="Per-episode wall-clock limit, seconds."),
    env_config: list[str] = typer.Option([], "--env-config", help="KEY=VALUE passed to the env factory (repeatable)."),
    config: str = typer.Option(None, "--config", help="A JSON or YAML EvalConfig; flags override it."),
    out: str = typer.Option(None, "--out", "-o", help="Run directory (default runs/ENV-MODEL-TIME)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out: only missing episodes run."),
    retry_infra: bool = typer.Option(None, "--retry-infra/--no-retry-infra", help="On resume, re-run infra errors."),
    price_in: float = typer.Option(None, "--price-in", help="USD per million input tokens (cost estimate)."),
    price_out: float = typer.Option(None, "--price-out", help="USD per million output tokens (cost estimate)."),
    name: str = typer.Option(None, "--name", help="A label for tables and plots."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Evaluate a policy on an env's tasks: success, reward (95% CI), pass@k, pass^k, tokens, latency."""
    from traject.eval.commands import EvalFlags, eval_command

    flags = EvalFlags(**{k: v for k, v in locals().items() if k in EvalFlags.__dataclass_fields__})
    raise typer.Exit(eval_command(flags, console, argv=sys.argv))


@app.command()
def compare(
    runs: list[str] = typer.Argument(..., help="Eval run directories."),
    out: str = typer.Option("comparison", "--out", "-o", help="Where to write comparison.md/.json and pareto.png."),
) -> None:
    """Compare eval runs: a table, a Markdown summary and a Pareto plot of success against tokens."""
    from traject.eval.commands import compare_command

    raise typer.Exit(compare_command(runs, out, console))


@app.command()
def view(
    run: str = typer.Argument(..., help="An eval run directory."),
    out: str = typer.Option(None, "--out", "-o", help="Where to write the report (default RUN/report)."),
) -> None:
    """Write a static HTML report of a run: a filterable task list and one page per trajectory."""
    from traject.eval.commands import view_command

    raise typer.Exit(view_command(run, out, console))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(
    ctx: typer.Context,
    config: str = typer.Argument(..., help="A YAML training config (see configs/, or docs/verl.md for veRL)."),
    backend: str = typer.Option(None, "--backend", help="local (default: the config's, else local) or verl."),
    set_: list[str] = typer.Option([], "--set", help="Override a config field: --set optim.lr=1e-4 (repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="verl: write the files and print the command only."),
) -> None:
    """Train a policy with RL (and an optional SFT warm start) from a config file. With
    --backend verl, extra arguments are raw hydra overrides (e.g. trainer.save_freq=10)."""
    if backend == "verl":
        if set_:
            console.print("[red]--set edits the local learner's config; for --backend verl edit the YAML "
                          "(docs/verl.md) or pass raw hydra overrides after the config[/red]")
            raise typer.Exit(2)
        from traject.trainers.verl.launcher import run_cli

        raise typer.Exit(run_cli(config, dry_run=dry_run, overrides=list(ctx.args)))
    if ctx.args:
        console.print(f"[red]unexpected arguments {ctx.args}: raw overrides go to --backend verl only; "
                      "use --set key=value for the local learner[/red]")
        raise typer.Exit(2)
    from traject.trainers.config import ConfigError
    from traject.trainers.run import train as run_train

    try:
        run_train(config, set_, backend=backend, log_fn=console.print)
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]", markup=False, highlight=False)
        raise typer.Exit(2) from None


@app.command()
def quickstart(
    out: str = typer.Option("runs/quickstart", "--out", help="Run directory (resumes if it holds a checkpoint)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the model, the data and the sampling."),
    steps: int = typer.Option(None, "--steps", help="RL steps (default: the quickstart's)."),
    set_: list[str] = typer.Option([], "--set", help="Override a config field, as for `traject train`."),
) -> None:
    """Build a tiny model; compare, on held-out tasks of a multi-turn tool-use env, SFT on an
    imperfect demonstrator's demonstrations (all of them, or the successful ones only) with
    the better of the two trained further by GRPO. CPU only, no downloads, a few minutes."""
    import time

    from traject.trainers.config import ConfigError
    from traject.trainers.quickstart import quickstart_config, run_quickstart

    t0 = time.perf_counter()
    try:
        cfg = quickstart_config(out=out, seed=seed, steps=steps, overrides=set_)
    except ConfigError as exc:
        console.print(str(exc), style="red", markup=False, highlight=False)
        raise typer.Exit(2) from None
    report = run_quickstart(cfg, log_fn=lambda m: console.print(m, markup=False, highlight=False))
    console.print(report.table())
    for line in report.summary_lines():
        console.print(line, markup=False, highlight=False)
    console.print(f"{time.perf_counter() - t0:.0f}s. Run directory: {report.out_dir} (quickstart.json, "
                  "reward_curve.png; sft_all/, sft_success/, rl/: metrics, trajectories, config)")


def _mount_sandbox() -> None:
    from traject.sandboxes.cli import app as sandbox_app

    app.add_typer(sandbox_app, name="sandbox", help="Build, list, check and prune sandboxes.")


_mount_sandbox()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        sys.exit(130)


if __name__ == "__main__":
    main()
