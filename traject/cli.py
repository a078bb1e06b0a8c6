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


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(
    ctx: typer.Context,
    config: str = typer.Argument(..., help="Training config (YAML)."),
    backend: str = typer.Option("local", "--backend", help="local (built-in learner) or verl."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Prepare the files and print the command only."),
) -> None:
    """Train a policy on an env. Extra arguments are raw overrides for the backend
    (hydra overrides for verl, e.g. trainer.save_freq=10)."""
    if backend == "verl":
        from traject.trainers.verl.launcher import run_cli

        raise typer.Exit(run_cli(config, dry_run=dry_run, overrides=list(ctx.args)))
    console.print(f"[red]unknown or unavailable backend {backend!r}[/red]")
    raise typer.Exit(2)

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
