"""Terminal output of ``traject eval``: a live progress bar and the final table (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from traject.eval.markdown import summary_rows
from traject.eval.summary import EvalSummary, is_scored
from traject.types import Status, Trajectory


class RichProgress:
    """Episodes done, success so far, infra errors, elapsed and remaining time."""

    def __init__(self, console: Console, description: str = "eval") -> None:
        self.console = console
        self.description = description
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=console, transient=False,
        )
        self.task_id = None
        self.scored = 0
        self.successes = 0
        self.infra = 0

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _stats(self) -> str:
        rate = f"{100 * self.successes / self.scored:.0f}%" if self.scored else "-"
        return f"success {rate}  infra errors {self.infra}"

    def start(self, total: int, done: int) -> None:
        self.task_id = self.progress.add_task(self.description, total=total, completed=done, stats=self._stats())

    def advance(self, traj: Trajectory) -> None:
        if traj.status is Status.INFRA_ERROR:
            self.infra += 1
        elif is_scored(traj):
            self.scored += 1
            self.successes += traj.success
        if self.task_id is not None:
            self.progress.update(self.task_id, advance=1, stats=self._stats())


class LineProgress:
    """Progress for output that is not a terminal (a log file, CI): one plain line every
    ``every_s`` seconds, from a timer thread so that it keeps coming while episodes are slow."""

    def __init__(self, console: Console, description: str = "eval", every_s: float = 30.0) -> None:
        import threading

        self.console = console
        self.description = description
        self.every_s = every_s
        self.total = self.done = self.scored = self.successes = self.infra = 0
        self._t0 = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def line(self) -> str:
        import time

        rate = f"{100 * self.successes / self.scored:.0f}%" if self.scored else "-"
        return (f"{self.description}: {self.done}/{self.total} episodes, success {rate}, "
                f"infra errors {self.infra}, {time.monotonic() - self._t0:.0f}s")

    def _print(self) -> None:
        self.console.print(self.line(), markup=False, highlight=False, soft_wrap=True)

    def _tick(self) -> None:
        while not self._stop.wait(self.every_s):
            self._print()

    def __enter__(self) -> LineProgress:
        import threading
        import time

        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._tick, name="traject-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.total:
            self._print()

    def start(self, total: int, done: int) -> None:
        self.total, self.done = total, done
        self._print()

    def advance(self, traj: Trajectory) -> None:
        self.done += 1
        if traj.status is Status.INFRA_ERROR:
            self.infra += 1
        elif is_scored(traj):
            self.scored += 1
            self.successes += traj.success


def summary_table(summary: EvalSummary, title: str = "results") -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value")
    for k, v in summary_rows(summary):
        table.add_row(k, v)
    return table
