"""The ``traject`` command. Each command parses its flags and calls the library: no logic
lives here that a library user would also need."""

from __future__ import annotations

import json
import sys

import typer
from rich.table import Table

from traject import cli_output
from traject.cli_output import console, error
from traject.eval.config import EvalConfig, PolicyConfig

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="traject: RL for multi-turn tool-using LLM agents.")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("traject")
        except PackageNotFoundError:
            v = "unknown"
        console.print(f"traject {v}", markup=False)
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of an error."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """traject: RL for multi-turn tool-using LLM agents."""
    cli_output.debug = debug


def _env_tools(env: object) -> tuple[list[str], list[dict]]:
    """The names and schemas of an env's tools, read without starting it, plus a note for each
    toolset whose tools are known only once it is set up."""
    from traject.environments.tool_env import ToolEnv
    from traject.tools.toolset import Toolset

    tools = list(getattr(env, "tools", []))
    names = [t.name for t in tools]
    if isinstance(env, ToolEnv):
        for spec in env._tool_specs:
            cls = spec if isinstance(spec, type) else type(spec)
            if issubclass(cls, Toolset) and cls.declared_tools() is None:
                names.append(f"({cls.__name__}: tools listed at set-up)")
    return names, [t.to_openai() for t in tools]


@app.command()
def envs(schemas: bool = typer.Option(False, "--schemas", help="Print the tools' JSON schemas, grouped by env, as one JSON object.")) -> None:
    """List the registered envs and their tools."""
    from traject.environments.registry import registry as env_registry
    from traject.tools.registry import registry as tool_registry

    table = Table(title="envs")
    table.add_column("name")
    table.add_column("tools")
    table.add_column("description")
    grouped: dict[str, list[dict] | str] = {}
    for name, entry in env_registry.entries().items():
        try:
            names, tool_schemas = _env_tools(entry.make())
        except Exception as exc:  # noqa: BLE001 - listing must not die on one env's missing extra
            table.add_row(name, f"unavailable: {exc}", entry.description, style="red")
            grouped[name] = f"unavailable: {exc}"
            continue
        table.add_row(name, ", ".join(names), entry.description)
        grouped[name] = tool_schemas
    if schemas:
        console.print(json.dumps(grouped, indent=2, ensure_ascii=False), markup=False, highlight=False)
        return
    console.print(table)
    plugin_tools = tool_registry.items()
    if plugin_tools:
        t2 = Table(title="tool plugins (entry points 'traject.tools')")
        t2.add_column("name")
        t2.add_column("kind")
        for name, provider in plugin_tools.items():
            t2.add_row(name, type(provider).__name__ if not isinstance(provider, type) else f"toolset {provider.__name__}")
        console.print(t2)


_E = {k: f.default for k, f in EvalConfig.model_fields.items()}
_P = {k: f.default for k, f in PolicyConfig.model_fields.items()}


@app.command("eval")
def eval_(
    env: str = typer.Option(None, "--env", "-e", help="Registered env name (see `traject envs`)."),
    policy: str = typer.Option(None, "--policy", show_default="openai", help="openai | scripted:MODULE:ATTR | hf:PATH | a plugin kind."),
    model: str = typer.Option(None, "--model", "-m", help="Model name at the endpoint (policy openai)."),
    base_url: str = typer.Option(None, "--base-url", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1."),
    tool_format: str = typer.Option(None, "--tool-format", help="Render tools into the prompt in this format (hermes) instead of native tools."),
    temperature: float = typer.Option(None, "--temperature", show_default=str(_P["temperature"])),
    max_tokens: int = typer.Option(None, "--max-tokens", show_default=str(_P["max_tokens"])),
    tasks: str = typer.Option(None, "--tasks", help="A JSONL file of Task records (else the env's own tasks)."),
    split: str = typer.Option(None, "--split", show_default="test", help="Split of the env's own tasks."),
    n: int = typer.Option(None, "--num-tasks", "-n", show_default="all", help="Number of tasks."),
    task_seed: int = typer.Option(None, "--task-seed", show_default="0", help="Seed of generated tasks."),
    samples: int = typer.Option(None, "--samples", "-k", show_default=str(_E["samples"]), help="Samples per task (for pass@k)."),
    concurrency: int = typer.Option(None, "--concurrency", "-c", show_default=str(_E["concurrency"]), help="Episodes in flight."),
    seed: int = typer.Option(None, "--seed", show_default=str(_E["seed"]), help="Base seed of episodes and bootstrap intervals."),
    timeout: float = typer.Option(None, "--timeout", show_default="none", help="Per-episode wall-clock limit, seconds."),
    env_config: list[str] = typer.Option([], "--env-config", help="KEY=VALUE passed to the env factory (repeatable)."),
    config: str = typer.Option(None, "--config", help="A JSON or YAML EvalConfig; flags override it."),
    out: str = typer.Option(None, "--out", "-o", show_default="runs/ENV-MODEL-TIME", help="Run directory."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out: only missing episodes run."),
    retry_infra: bool = typer.Option(None, "--retry-infra/--no-retry-infra", show_default="no-retry-infra", help="On resume, re-run infra errors."),
    price_in: float = typer.Option(None, "--price-in", help="USD per million input tokens (cost estimate)."),
    price_out: float = typer.Option(None, "--price-out", help="USD per million output tokens (cost estimate)."),
    name: str = typer.Option(None, "--name", help="A label for tables and plots."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or progress lines."),
    progress_every: float = typer.Option(30.0, "--progress-every", help="When output is not a terminal: seconds between progress lines."),
    check: bool = typer.Option(True, "--check/--no-check", help="Send the endpoint one request before starting."),
    ray: str = typer.Option(None, "--ray", help="Run episodes in Ray actors: --ray (RAY_ADDRESS or this "
                            "machine's `ray start` cluster) or --ray ADDRESS."),
) -> None:
    """Evaluate a policy on an env's tasks: success, reward (95% CI), pass@k, pass^k, tokens, latency."""
    from traject.eval.commands import EvalFlags, eval_command

    flags = EvalFlags(**{k: v for k, v in locals().items() if k in EvalFlags.__dataclass_fields__})
    raise typer.Exit(eval_command(flags, console, argv=sys.argv, err_console=cli_output.err_console))


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
    dry_run: bool = typer.Option(False, "--dry-run", help="verl: write the files, validate and print the command only."),
) -> None:
    """Train a policy with RL (and an optional SFT warm start) from a config file, on the local
    engine or veRL (the same config). With --backend verl, extra arguments are raw hydra
    overrides (e.g. trainer.save_freq=10)."""
    if backend == "verl" or dry_run:
        from traject.trainers.verl.launcher import run_cli

        raise typer.Exit(run_cli(config, dry_run=dry_run, overrides=list(ctx.args), sets=list(set_)))
    if ctx.args:
        error(f"unexpected arguments {ctx.args}: raw overrides go to --backend verl only; "
              "use --set key=value for the local learner")
        raise typer.Exit(2)
    from traject.trainers.config import ConfigError
    from traject.trainers.run import train as run_train

    try:
        run_train(config, set_, backend=backend, log_fn=lambda m: console.print(m, markup=False, highlight=False))
    except ConfigError as exc:
        error(str(exc))
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
        error(str(exc))
        raise typer.Exit(2) from None
    report = run_quickstart(cfg, log_fn=lambda m: console.print(m, markup=False, highlight=False))
    console.print(report.table())
    for line in report.summary_lines():
        console.print(line, markup=False, highlight=False)
    console.print(f"{time.perf_counter() - t0:.0f}s. Run directory: {report.out_dir} (quickstart.json, "
                  "reward_curve.png; sft_all/, sft_success/, rl/: metrics, trajectories, config)")



@app.command()
def serve(
    model_path: str = typer.Argument(..., help="A local Hugging Face model directory (save_pretrained)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (127.0.0.1: this machine only)."),
    port: int = typer.Option(8000, "--port", "-p"),
    model_name: str = typer.Option(None, "--model-name", help="The model id clients name (default: MODEL_PATH)."),
    tool_format: str = typer.Option("hermes", "--tool-format", help="How the model writes tool calls."),
    max_batch_size: int = typer.Option(16, "--max-batch-size", help="Requests batched into one forward pass."),
    max_model_len: int = typer.Option(None, "--max-model-len", help="Context window (default: the model config's)."),
    device: str = typer.Option(None, "--device", help="cpu, cuda, cuda:0 ... (default: cpu)."),
    dtype: str = typer.Option(None, "--dtype", help="float32 (default), bfloat16, float16."),
    chat_template: str = typer.Option(None, "--chat-template",
                                      help="compact, hermes, qwen3 or a .jinja file (default: the tokenizer's)."),
) -> None:
    """Serve a local HF model over the OpenAI API subset traject uses, with exact token ids,
    logprobs, weight updates (POST /update_weights_from_disk) and a policy version on every answer."""
    from pathlib import Path

    from traject.serve import serve as run_server

    if not Path(model_path).is_dir():
        error(f"traject serve: MODEL_PATH {model_path!r} is not a directory: pass a model saved with "
              "save_pretrained")
        raise typer.Exit(2)
    from traject.trainers.templates import resolve_chat_template

    try:
        template = resolve_chat_template(chat_template)
    except ValueError as exc:
        error(f"traject serve: --chat-template: {exc}")
        raise typer.Exit(2) from None
    config = {k: v for k, v in {"tool_format": tool_format, "max_batch_size": max_batch_size,
                                "max_model_len": max_model_len, "device": device, "dtype": dtype,
                                "chat_template": template}.items()
              if v is not None}
    console.print(f"loading {model_path}; it will answer on http://{host}:{port}/v1", markup=False, highlight=False)
    run_server(model_path, host=host, port=port, model_name=model_name, **config)


def _mount_sandbox() -> None:
    from traject.sandboxes.cli import app as sandbox_app

    app.add_typer(sandbox_app, name="sandbox", help="Build, list, check and prune sandboxes.")


_mount_sandbox()


@app.command("serve-env")
def serve_env(
    env: str = typer.Argument(..., help="A registered env name (see `traject envs`), or SCHEME:REST."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    tasks: str = typer.Option(None, "--tasks", help="A JSONL file of Task records (else the env's own tasks)."),
    n: int = typer.Option(None, "--num-tasks", "-n", help="Number of the env's own tasks."),
    split: str = typer.Option(None, "--split"),
    max_sessions: int = typer.Option(8, "--max-sessions", help="Concurrent WebSocket sessions (episodes)."),
    env_config: list[str] = typer.Option([], "--env-config", help="KEY=VALUE passed to the env factory (repeatable)."),
) -> None:
    """Serve an env as an OpenEnv environment server (reset/step/state over HTTP and /ws)."""
    from traject.interop.cli import serve_env_command

    raise typer.Exit(serve_env_command(env, host=host, port=port, tasks=tasks, n=n, split=split,
                                       max_sessions=max_sessions, env_config=env_config, console=console))


def optional_value(argv: list[str], flag: str, default: str) -> list[str]:
    """``--ray`` may come without a value: give it ``default`` (click options need one)."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == flag and (i + 1 == len(out) or out[i + 1].startswith("-")):
            out.insert(i + 1, default)
            break
    return out


def main() -> None:
    sys.argv = optional_value(sys.argv, "--ray", "auto")
    sys.exit(cli_output.run_cli(app))


if __name__ == "__main__":
    main()
