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


def summary_table(summary: EvalSummary, title: str = "results") -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value")
    for k, v in summary_rows(summary):
        table.add_row(k, v)
    return table
