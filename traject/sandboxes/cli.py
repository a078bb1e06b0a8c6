"""``traject sandbox ...``: build images, list and prune containers, check a sandbox works.

Mounted by traject/cli.py as the ``sandbox`` sub-app; the logic lives in the library."""

from __future__ import annotations

import typer
from rich.table import Table

from traject.cli_output import err_console, error, make_console

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Sandbox images and containers.")
console = make_console()


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


def _hosts(given: list[str]) -> list[str]:
    """--host values, else the configured hosts (TRAJECT_DOCKER_HOSTS, else DOCKER_HOST)."""
    from traject.sandboxes.base import SandboxError
    from traject.sandboxes.config import SandboxConfig, check_host_url
    from traject.sandboxes.hosts import configured_hosts

    try:
        if given:
            return list(dict.fromkeys(check_host_url(h) for h in given))
        return list(configured_hosts(SandboxConfig()))
    except (ValueError, SandboxError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--host") from None


HOST_OPTION = typer.Option([], "--host", help="a Docker host (unix://, tcp://, ssh://; repeatable); default: "
                           "TRAJECT_DOCKER_HOSTS, else DOCKER_HOST")


def _say_unreachable(unreachable: dict[str, str], asked: int) -> None:
    """One line naming the hosts that did not answer; exit 1 when none did."""
    if not unreachable:
        return
    line = f"{len(unreachable)} of {asked} docker host(s) did not answer: " + ", ".join(
        f"{h} ({why})" for h, why in unreachable.items())
    if len(unreachable) == asked:
        error(line)
        raise typer.Exit(1)
    err_console.print(f"warning: {line}", style="yellow", markup=False, highlight=False)


@app.command("list")
def list_(host: list[str] = HOST_OPTION) -> None:
    """List traject's sandbox containers on every configured Docker host, and whether their
    owning process still runs."""
    from traject.sandboxes.prune import list_sandboxes, reachable

    hosts = _hosts(host)
    live, unreachable = reachable(hosts)
    table = Table(title="traject sandboxes")
    for col in ("host", "id", "image", "status", "owner pid", "owner alive"):
        table.add_column(col)
    for url in live:
        for row in list_sandboxes(host=url):
            alive = "yes" if row.owner_alive else "no"
            table.add_row(row.host, row.id, row.image, row.status, str(row.owner_pid), alive)
    console.print(table)
    _say_unreachable(unreachable, len(hosts))


@app.command()
def prune(
    all_: bool = typer.Option(False, "--all", help="also remove containers of processes still running"),
    host: list[str] = HOST_OPTION,
) -> None:
    """Remove traject containers left by crashed processes (and their socket directories), on
    every configured Docker host."""
    from traject.sandboxes.prune import prune as do_prune

    hosts = _hosts(host)
    report = do_prune(include_live=all_, hosts=hosts)
    per_host = ", ".join(f"{n} on {h}" for h, n in report.removed_per_host.items())
    if report.removed_per_host:
        console.print(f"removed {len(report.removed)} container(s) ({per_host}), kept {len(report.kept)} of live "
                      f"processes, removed {report.run_dirs_removed} socket dir(s)")
    _say_unreachable(report.unreachable, len(hosts))


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
