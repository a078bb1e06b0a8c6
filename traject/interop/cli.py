"""``traject serve-env``: flags to a running OpenEnv server (the command lives in cli.py)."""

from __future__ import annotations

from typing import Any

from rich.console import Console


def serve_env_command(env: str, *, host: str, port: int, tasks: str | None, n: int | None, split: str | None,
                      max_sessions: int, env_config: list[str], console: Console) -> int:
    from traject.eval.commands import _parse_env_config
    from traject.eval.config import ConfigError
    from traject.eval.task_file import load_task_file
    from traject.interop.openenv_server import serve_env

    try:
        config = _parse_env_config(env_config)
        task_list = load_task_file(tasks) if tasks else None
    except ConfigError as exc:
        console.print(str(exc), style="red", markup=False, highlight=False)
        return 2
    options: dict[str, Any] = {k: v for k, v in (("n", n), ("split", split)) if v is not None}
    try:
        serve_env(env, env_config=config, tasks=task_list, task_options=options, host=host, port=port,
                  max_sessions=max_sessions)
    except (KeyError, ValueError, TypeError) as exc:
        console.print(f"serve-env {env}: {exc}", style="red", markup=False, highlight=False)
        return 2
    return 0
