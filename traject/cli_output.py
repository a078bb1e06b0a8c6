"""How the ``traject`` command talks: consoles that never hard-wrap when output is not a
terminal, errors as one line on stderr, and exit codes (2 bad input, 1 runtime failure, 130
interrupted). Every command's errors pass through ``run_cli``; ``--debug`` shows tracebacks."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable

from rich.console import Console

BAD_INPUT, FAILED, INTERRUPTED = 2, 1, 130
# Not a terminal (a log, a pipe, CI): no wrapping at 80 columns, which would split a command
# in two; tables take the width their content needs.
_LOG_WIDTH = 1000


def make_console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    tty = stream.isatty()
    return Console(stderr=stderr, soft_wrap=not tty, width=None if tty else _LOG_WIDTH, highlight=False)


console = make_console()
err_console = make_console(stderr=True)
debug = False


def error(message: str, *, hint: str | None = None) -> None:
    """One line on stderr (plus a hint line); the message is printed as is, never as markup."""
    err_console.print(f"error: {message}", style="red", markup=False, highlight=False)
    if hint:
        err_console.print(hint, markup=False, highlight=False)


def _is_bad_input(exc: BaseException) -> bool:
    from traject.agents.store import StoreError
    from traject.eval.config import ConfigError

    # The learner's ConfigError by name: importing its module would import torch.
    return isinstance(exc, (ConfigError, StoreError)) or type(exc).__name__ == "ConfigError"


def run_cli(app: Callable[..., object]) -> int:
    """Run the click/typer ``app`` and map what escapes it to a message and an exit code."""
    import typer
    from typer._click.exceptions import ClickException  # typer's own copy of click

    try:
        result = app(standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except ClickException as exc:  # usage errors: click's own message, rc 2
        exc.show()
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("interrupted", style="yellow", markup=False)
        return INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - every error is a line, not a traceback
        if debug:
            traceback.print_exc()
        code = BAD_INPUT if _is_bad_input(exc) else FAILED
        text = str(exc) if code == BAD_INPUT else f"{type(exc).__name__}: {exc}"
        error(text.strip() or type(exc).__name__, hint=None if debug else "(run with --debug for the traceback)"
              if code == FAILED else None)
        return code
    return result if isinstance(result, int) else 0
