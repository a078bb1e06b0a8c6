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


@app.command()
def train(
    config: str = typer.Argument(..., help="A YAML training config (see configs/)."),
    backend: str = typer.Option(None, "--backend", help="local (default: the config's, else local) or verl."),
    set_: list[str] = typer.Option([], "--set", help="Override a config field: --set optim.lr=1e-4 (repeatable)."),
) -> None:
    """Train a policy with RL (and an optional SFT warm start) from a config file."""
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
    """Build a tiny model, SFT it on demonstrations, train it with GRPO on a tool-use env, and
    compare held-out success before and after RL. CPU only, no downloads, a few minutes."""
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
    table = Table(title=f"held-out {cfg.env.name} tasks (n={report.after['n']}, greedy), seed {seed}")
    for col in ("", "success rate", "mean reward", "tool calls / episode", "answered in text"):
        table.add_column(col)
    for name, r in (("after SFT", report.before), ("after SFT + RL", report.after)):
        table.add_row(name, f"{r['success_rate']:.3f}", f"{r['mean_reward']:.3f}", f"{r['tool_calls']:.2f}",
                      f"{r['text_answer_rate']:.2f}")
    console.print(table)
    console.print(f"RL changed held-out success by {100 * report.success_gain:+.1f} points "
                  f"in {time.perf_counter() - t0:.0f}s. Run directory: {report.out_dir} "
                  f"(metrics.jsonl, reward_curve.png, trajectories.jsonl, config.yaml, quickstart.json)")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        sys.exit(130)


if __name__ == "__main__":
    main()
