"""``traject sandbox ...``: build images, list and prune containers, check a sandbox works.

Mounted by traject/cli.py as the ``sandbox`` sub-app; the logic lives in the library."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from traject.cli_output import error

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Sandbox images and containers.")
console = Console()


@app.command()
def build(
    method: str = typer.Option("auto", help="auto | dockerfile | rootfs (mmdebstrap + docker import)"),
    force: bool = typer.Option(False, "--force", help="rebuild even when the content tag exists"),
    suite: str | None = typer.Option(None, "--suite", help="Debian suite: bullseye (Python 3.9), bookworm (3.11), "
                                     "trixie (3.13); default: the default suite (moves traject/base:latest)"),
) -> None:
    """Build the base sandbox image (skipped when an image with the same content exists)."""
    from traject.sandboxes.config import DEFAULT_IMAGE
    from traject.sandboxes.images import BaseImageSpec, ImageBuildError, build_base_image, default_suite

    if method not in ("auto", "dockerfile", "rootfs"):
        raise typer.BadParameter("method must be one of auto, dockerfile, rootfs", param_hint="--method")
    try:
        ref = build_base_image(BaseImageSpec(suite=suite), method=method, force=force)  # type: ignore[arg-type]
    except ImageBuildError as exc:
        error(str(exc))
        raise typer.Exit(1) from None
    state = f"built via {ref.method} in {ref.seconds:.1f}s" if ref.built else "up to date"
    chosen = suite or default_suite()
    aliases = f"traject/base:{chosen}" + (f" and {DEFAULT_IMAGE}" if chosen == default_suite() else "")
    console.print(f"{ref.tag} ({state}); also tagged {aliases}")


@app.command()
def derive(
    base: str = typer.Option("traject/base:latest", help="image to start from"),
    apt: list[str] = typer.Option([], "--apt", help="a Debian package to install (repeatable)"),
    pip: list[str] = typer.Option([], "--pip", help="a pip requirement to install (repeatable)"),
    repo: str | None = typer.Option(None, help="git URL or local repository path, checked out into the workspace"),
    commit: str | None = typer.Option(None, help="commit to check out"),
    run: list[str] = typer.Option([], "--run", help="a shell command to run as root (repeatable)"),
) -> None:
    """Build (or find in cache) a per-task image derived from the base image."""
    from traject.sandboxes.images import DeriveSpec, ImageBuildError, derive_image

    spec = DeriveSpec(apt_packages=tuple(apt), pip_packages=tuple(pip), repo=repo, commit=commit, run=tuple(run))
    try:
        ref = derive_image(base, spec)
    except ImageBuildError as exc:
        error(str(exc))
        raise typer.Exit(1) from None
    console.print(f"{ref.tag} ({'built in %.1fs' % ref.seconds if ref.built else 'cached'})")


@app.command("list")
def list_() -> None:
    """List traject's sandbox containers and whether their owning process still runs."""
    from traject.sandboxes.prune import list_sandboxes

    table = Table(title="traject sandboxes")
    for col in ("id", "image", "status", "owner pid", "owner alive"):
        table.add_column(col)
    for row in list_sandboxes():
        table.add_row(row["id"], str(row["image"]), str(row["status"]), str(row["owner_pid"]),
                      "yes" if row["owner_alive"] else "no")
    console.print(table)


@app.command()
def prune(
    all_: bool = typer.Option(False, "--all", help="also remove containers of processes still running"),
) -> None:
    """Remove traject containers left by crashed processes (and their socket directories)."""
    from traject.sandboxes.prune import prune as do_prune

    report = do_prune(include_live=all_)
    console.print(f"removed {len(report.removed)} container(s), kept {len(report.kept)} of live "
                  f"processes, removed {report.run_dirs_removed} socket dir(s)")


@app.command()
def check(backend: str = typer.Option("auto", help="auto | docker | local")) -> None:
    """Start a sandbox, run a command in it, and report how long that took."""
    import time

    import anyio

    from traject.sandboxes.config import SandboxConfig
    from traject.sandboxes.factory import open_sandbox

    async def go() -> None:
        t0 = time.perf_counter()
        sandbox = await open_sandbox(SandboxConfig(backend=backend))  # type: ignore[arg-type]
        try:
            t1 = time.perf_counter()
            result = await sandbox.exec("python3 --version && id -u", timeout=10)
            t2 = time.perf_counter()
        finally:
            await sandbox.aclose()
        console.print(f"{sandbox!r}: started in {(t1 - t0) * 1000:.0f} ms, exec in {(t2 - t1) * 1000:.1f} ms")
        console.print(result.stdout.strip() or result.stderr.strip())

    anyio.run(go)
