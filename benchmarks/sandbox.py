"""Sandbox hot paths, measured side by side in one run.

    PYTHONPATH=. python benchmarks/sandbox.py [--out benchmarks/results/sandbox.json]

1. Exec overhead of ``true``: the fast channel (unix socket to the in-container executor)
   against plain ``docker exec`` (docker SDK exec_run), traject's ``docker exec`` fallback
   channel, a LocalSandbox, and a bare local subprocess.
2. Acquire latency: a warm SandboxPool against creating a container cold.
3. The most concurrent sandboxes this host holds with every one answering: add sandboxes in
   batches until ``--max-sandboxes`` or until one fails to answer ``true`` within the deadline;
   everything is removed afterwards.

Needs a Docker daemon and the base image (scripts/setup_docker.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from traject.sandboxes import SandboxConfig, SandboxPool  # noqa: E402
from traject.sandboxes.docker_client import get_client  # noqa: E402
from traject.sandboxes.docker_sandbox import DockerSandbox  # noqa: E402
from traject.sandboxes.local_sandbox import LocalSandbox  # noqa: E402

LABELS = {"traject.benchmark": str(os.getpid())}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {"n": len(ms), "p50_ms": statistics.median(ms), "p99_ms": pct(ms, 99), "mean_ms": statistics.fmean(ms)}


async def timed(fn, n: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        await fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t0)
    return out


async def bench_exec(n: int, n_slow: int) -> dict[str, dict[str, float]]:
    cfg = SandboxConfig(backend="docker", labels=LABELS)
    results: dict[str, dict[str, float]] = {}
    fast = await DockerSandbox.create(cfg.model_copy(update={"channel": "socket"}))
    slow = await DockerSandbox.create(cfg.model_copy(update={"channel": "docker_exec"}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        local = await LocalSandbox.create(SandboxConfig(backend="local"))
    try:
        async def fast_true() -> None:
            r = await fast.exec(["true"], timeout=10)
            assert r.exit_code == 0

        async def fallback_true() -> None:
            r = await slow.exec(["true"], timeout=10)
            assert r.exit_code == 0

        api = get_client().api

        def raw_docker_exec() -> None:
            created = api.exec_create(fast.container_id, ["true"])
            api.exec_start(created["Id"])
            assert api.exec_inspect(created["Id"])["ExitCode"] == 0

        async def docker_exec_true() -> None:
            await anyio.to_thread.run_sync(raw_docker_exec)

        async def local_sandbox_true() -> None:
            r = await local.exec(["true"], timeout=10)
            assert r.exit_code == 0

        async def subprocess_true() -> None:
            r = await anyio.run_process(["true"])
            assert r.returncode == 0

        results["fast channel (socket) exec true"] = summary(await timed(fast_true, n))
        results["docker exec (SDK exec_run) true"] = summary(await timed(docker_exec_true, n_slow))
        results["traject docker_exec fallback channel"] = summary(await timed(fallback_true, n_slow))
        results["LocalSandbox exec true"] = summary(await timed(local_sandbox_true, n))
        results["local subprocess true (no sandbox)"] = summary(await timed(subprocess_true, n))
    finally:
        for sb in (fast, slow, local):
            await sb.aclose()
    return results


async def bench_acquire(n_warm: int, n_cold: int) -> dict[str, dict[str, float]]:
    cfg = SandboxConfig(backend="docker", labels=LABELS)
    cold = []
    for _ in range(n_cold):
        t0 = time.perf_counter()
        sb = await DockerSandbox.create(cfg)
        cold.append(time.perf_counter() - t0)
        await sb.aclose()
    warm = []
    async with SandboxPool(cfg, size=2, max_live=4) as pool:
        for _ in range(n_warm):
            await pool.wait_ready()
            t0 = time.perf_counter()
            sb = await pool.acquire()
            warm.append(time.perf_counter() - t0)
            await sb.aclose()
    return {"warm pool acquire": summary(warm), "cold create (container start + executor ready)": summary(cold)}


async def bench_capacity(limit: int, batch: int, deadline_s: float) -> dict[str, object]:
    cfg = SandboxConfig(backend="docker", labels=LABELS, memory="256m", pids_limit=64)
    held: list[DockerSandbox] = []
    failure = None
    t_start = time.perf_counter()
    worst_ping = 0.0
    try:
        while len(held) < limit and failure is None:
            want = min(batch, limit - len(held))
            made: list[DockerSandbox] = []

            async def make() -> None:
                made.append(await DockerSandbox.create(cfg))

            try:
                with anyio.fail_after(120):
                    async with anyio.create_task_group() as tg:
                        for _ in range(want):
                            tg.start_soon(make)
            except Exception as exc:  # creation failed: that is the host's limit
                failure = f"creating sandbox #{len(held) + len(made) + 1} failed: {exc!r}"[:300]
            held.extend(made)
            # every sandbox must answer, all at once, within the deadline
            late: list[str] = []
            t0 = time.perf_counter()

            async def probe(sb: DockerSandbox) -> None:
                try:
                    with anyio.fail_after(deadline_s):
                        r = await sb.exec(["true"], timeout=deadline_s)
                    if r.exit_code != 0:
                        late.append(f"{sb!r} answered exit {r.exit_code}")
                except Exception as exc:
                    late.append(f"{sb!r}: {exc!r}")

            async with anyio.create_task_group() as tg:
                for sb in held:
                    tg.start_soon(probe, sb)
            worst_ping = max(worst_ping, time.perf_counter() - t0)
            if late:
                failure = f"{len(late)} sandbox(es) did not answer within {deadline_s}s: {late[0]}"[:300]
            print(f"  {len(held)} sandboxes, all answering: {not late}", file=sys.stderr)
        answering = len(held) if failure is None else None
    finally:
        t_cleanup = time.perf_counter()

        async def close(sb: DockerSandbox) -> None:
            await sb.aclose()

        limiter = anyio.CapacityLimiter(8)

        async def close_limited(sb: DockerSandbox) -> None:
            async with limiter:
                await close(sb)

        async with anyio.create_task_group() as tg:
            for sb in held:
                tg.start_soon(close_limited, sb)
        cleanup_s = time.perf_counter() - t_cleanup
    left = get_client().api.containers(all=True, filters={"label": f"traject.benchmark={os.getpid()}"})
    return {
        "held_all_answering": answering if answering is not None else max(0, len(held) - batch),
        "search_limit": limit,
        "stopped_by": failure or f"search limit {limit} reached",
        "per_sandbox_memory": cfg.memory,
        "all_answer_roundtrip_s": worst_ping,
        "fill_s": t_cleanup - t_start,
        "cleanup_s": cleanup_s,
        "containers_left": len(left),
    }


def print_table(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"traject sandboxes on {results['host']['cpus']} cores, {results['host']['mem_gb']} GB "
                        f"(load avg {results['load_avg_1m_before']} -> {results['load_avg_1m_after_latency']})")
    table.add_column("measure")
    table.add_column("n", justify="right")
    table.add_column("p50 ms", justify="right")
    table.add_column("p99 ms", justify="right")
    table.add_column("vs first row", justify="right")
    for section in ("exec", "acquire"):
        rows = results[section]
        first = next(iter(rows.values()))["p50_ms"]
        for name, s in rows.items():
            table.add_row(name, str(s["n"]), f"{s['p50_ms']:.2f}", f"{s['p99_ms']:.2f}", f"{s['p50_ms'] / first:.1f}x")
        table.add_section()
    cap = results.get("capacity")
    if cap:
        table.add_row(f"concurrent sandboxes, all answering (limit {cap['search_limit']})",
                      str(cap["held_all_answering"]), f"{cap['all_answer_roundtrip_s'] * 1000:.0f}", "", "")
        table.add_row(f"  stopped by: {cap['stopped_by']}; cleanup {cap['cleanup_s']:.1f}s, "
                      f"{cap['containers_left']} left", "", "", "", "")
    Console().print(table)


async def main(args: argparse.Namespace) -> dict:
    results: dict = {
        "host": {"cpus": os.cpu_count(), "mem_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
                 "python": platform.python_version(), "kernel": platform.release()},
        "command": " ".join(sys.argv),
        # the machine may be shared: the 1-minute load average says how busy it was
        "load_avg_1m_before": round(os.getloadavg()[0], 2),
    }
    results["exec"] = await bench_exec(args.n, args.n_slow)
    results["acquire"] = await bench_acquire(args.n_acquire, args.n_cold)
    results["load_avg_1m_after_latency"] = round(os.getloadavg()[0], 2)
    if args.max_sandboxes > 0:
        results["capacity"] = await bench_capacity(args.max_sandboxes, args.batch, args.deadline)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500, help="fast exec samples")
    parser.add_argument("--n-slow", type=int, default=100, help="docker exec samples")
    parser.add_argument("--n-acquire", type=int, default=30)
    parser.add_argument("--n-cold", type=int, default=10)
    parser.add_argument("--max-sandboxes", type=int, default=200, help="capacity search bound (0: skip)")
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--deadline", type=float, default=5.0, help="seconds each sandbox has to answer")
    parser.add_argument("--out", default="benchmarks/results/sandbox.json")
    ns = parser.parse_args()
    res = anyio.run(main, ns)
    print_table(res)
    Path(ns.out).parent.mkdir(parents=True, exist_ok=True)
    Path(ns.out).write_text(json.dumps(res, indent=2))
    print(f"wrote {ns.out}")
