"""Past one machine, side by side in one run: sandboxes on one Docker daemon against two, warm
exec on a local against a remote daemon, creations under the machine-wide admission cap, and
eval throughput with Ray on one node against two.

    PYTHONPATH=. python benchmarks/scale.py [--quick] [--sandboxes N] [--json PATH]

The second daemon (traject.testing.docker_daemon: own socket, data-root, exec-root, pidfile,
``--bridge=none --iptables=false``) is reached over tcp://127.0.0.1:PORT, so it counts as
remote: no shared filesystem, every call over the stdio channel. Both daemons share this
machine's CPUs and memory, so two daemons show what placement and the remote path cost, not
the capacity a second machine would add.

(1) concurrent sandboxes: N opened at once (host_cap N per host), one exec in each, all closed;
    on this machine's daemon alone, then spread over both.
(2) warm exec: ``true`` in a warm sandbox, interleaved: local (unix-socket channel) against
    remote (stdio channel over tcp), the one-``docker exec``-per-call channel for context, and
    (when openssh-server is installed) the second daemon again as an ssh:// host, through a
    test sshd on 127.0.0.1 (traject.testing.ssh_server). ``remote_exec_ratio`` = remote p50 /
    local p50; ``ssh_exec_ratio`` = ssh p50 / local p50.
(3) admission: 8 processes each ask for M sandboxes at once (M = 64, host_cap 16; with --quick
    M = 4, host_cap 4; create_cap = host_cap / 2), each held 4 s, so that demand outruns the
    cap; the daemon's running containers of this run are counted every 20 ms.
    ``max_running_seen`` must not pass ``host_cap``; creations/s is what the cap lets through.
(4) Ray: the simulated engine (benchmarks/sim_server.py) and the rollout benchmark's env,
    episodes run in Ray actors on a two-node local cluster (started during (3)): one actor on
    one node against one actor per node.

Writes benchmarks/results/scale.json (``remote_exec_ratio``, ``max_running_seen``, ``host_cap``,
``leaked_containers``, ``ssh_exec_ratio`` when measured, and the rest).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from functools import partial
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parent))

from priority import raise_priority  # noqa: E402

from traject.sandboxes import SandboxConfig, open_sandbox  # noqa: E402
from traject.sandboxes.docker_client import docker_host, get_client  # noqa: E402

LABEL = "traject.bench.scale"


def config(run: str, **kw: object) -> SandboxConfig:
    return SandboxConfig(backend="docker", labels={LABEL: run}, memory="256m", **kw)  # type: ignore[arg-type]


def count_ours(url: str, run: str, *, running: bool = True) -> int:
    api = get_client(host=url).api
    return len(api.containers(all=not running, filters={"label": f"{LABEL}={run}"}))


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


# ---------------------------------------------------------------- (1) concurrent sandboxes


async def concurrent_sandboxes(run: str, hosts: tuple[str, ...], n: int) -> dict[str, object]:
    cfg = config(run, hosts=hosts, host_cap=n, create_cap=8)
    boxes: list = []
    errors: list[str] = []
    t0 = time.perf_counter()

    opened_at: list[float] = []

    async def one() -> None:
        try:
            boxes.append(await open_sandbox(cfg))
            opened_at.append(time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001 - counted: how far the machine goes
            errors.append(f"{type(exc).__name__}: {str(exc)[:120]}")

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one)
    open_s = time.perf_counter() - t0
    ok = 0

    async def exec_one(sb) -> None:  # noqa: ANN001
        nonlocal ok
        if (await sb.exec("true", timeout=60)).ok:
            ok += 1

    t1 = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for sb in boxes:
            tg.start_soon(exec_one, sb)
    exec_s = time.perf_counter() - t1
    per_host = {h: sum(1 for b in boxes if b.host == h) for h in hosts}
    growth = by_tenth(opened_at, [b.start_timings for b in boxes])
    async with anyio.create_task_group() as tg:
        for sb in boxes:
            tg.start_soon(sb.aclose)
    return {"daemons": len(hosts), "asked": n, "opened": len(boxes), "exec_ok": ok, "open_s": round(open_s, 2),
            "creations_per_s": round(len(boxes) / open_s, 2), "exec_all_s": round(exec_s, 3),
            "per_host": per_host, "errors": errors[:3], "by_tenth": growth}


def by_tenth(opened_at: list[float], timings: list[dict[str, float]]) -> dict[str, list[float]]:
    """As the count grows: creations/s in each tenth of the sandboxes (in the order they
    opened), and the median seconds the daemon took to create + start a container and the
    executor to answer, per tenth."""
    order = sorted(range(len(opened_at)), key=opened_at.__getitem__)
    step = max(1, len(order) // 10)
    out: dict[str, list[float]] = {"creations_per_s": [], "daemon_p50_s": [], "executor_p50_s": []}
    for start in range(0, len(order) - step + 1, step):
        idx = order[start : start + step]
        began = opened_at[order[start - 1]] if start else 0.0
        out["creations_per_s"].append(round(len(idx) / max(1e-9, opened_at[idx[-1]] - began), 2))
        out["daemon_p50_s"].append(round(statistics.median(timings[i]["daemon_s"] for i in idx), 3))
        out["executor_p50_s"].append(round(statistics.median(timings[i]["executor_s"] for i in idx), 3))
    return out


# ---------------------------------------------------------------- (2) warm exec


async def warm_exec(run: str, remote: str, iters: int, ssh: str | None = None) -> dict[str, object]:
    boxes = {
        "local (socket)": await open_sandbox(config(run, hosts=(docker_host(),))),
        "remote (stdio)": await open_sandbox(config(run, hosts=(remote,))),
        "remote (docker exec per call)": await open_sandbox(config(run, hosts=(remote,), channel="docker_exec")),
    }
    if ssh is not None:
        boxes["remote over ssh (stdio)"] = await open_sandbox(config(run, hosts=(ssh,)))
    times: dict[str, list[float]] = {k: [] for k in boxes}
    try:
        for sb in boxes.values():
            for _ in range(5):
                await sb.exec("true", timeout=10)
        for i in range(iters):
            for name, sb in boxes.items():
                if name.startswith("remote (docker") and i % 5:
                    continue  # slow: a fifth of the samples
                t = time.perf_counter()
                r = await sb.exec("true", timeout=10)
                times[name].append(time.perf_counter() - t)
                assert r.ok, r
    finally:
        for sb in boxes.values():
            await sb.aclose()
    out = {name: {"p50_ms": round(1000 * statistics.median(ts), 2), "p95_ms": round(1000 * pct(ts, 0.95), 2),
                  "n": len(ts)} for name, ts in times.items()}
    out["remote_exec_ratio"] = round(out["remote (stdio)"]["p50_ms"] / out["local (socket)"]["p50_ms"], 3)
    if ssh is not None:
        out["ssh_exec_ratio"] = round(out["remote over ssh (stdio)"]["p50_ms"] / out["local (socket)"]["p50_ms"], 3)
    return out


def ssh_front(daemon):  # noqa: ANN001, ANN201
    """An sshd on 127.0.0.1 in front of ``daemon`` (traject.testing.ssh_server), or None."""
    from traject.testing.ssh_server import TestSshd, can_start

    why = can_start()
    if why:
        print(f"no ssh host measured: {why}", file=sys.stderr)
        return None
    return TestSshd(f"unix://{daemon.socket}").start()


# ---------------------------------------------------------------- (3) admission


async def _admission_worker(run: str, n: int, cap: int, hold_s: float) -> None:
    cfg = config(run, host_cap=cap, create_cap=max(2, cap // 2), hosts=(docker_host(),))

    async def one() -> None:
        async with await open_sandbox(cfg) as sb:
            assert (await sb.exec("true", timeout=60)).ok
            await anyio.sleep(hold_s)

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one)


def admission(run: str, procs: int, per_proc: int, cap: int, hold_s: float) -> dict[str, object]:
    slots = tempfile.mkdtemp(prefix="traject-admission-bench-")
    env = {**os.environ, "TRAJECT_ADMISSION_DIR": slots}  # this run's slots only
    seen = 0
    stop = threading.Event()

    def poll() -> None:
        nonlocal seen
        while not stop.is_set():
            seen = max(seen, count_ours(docker_host(), run))
            time.sleep(0.02)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    workers = [subprocess.Popen([sys.executable, __file__, "--admission-worker", run, str(per_proc), str(cap),
                                 str(hold_s)], env=env) for _ in range(procs)]
    codes = [w.wait() for w in workers]
    wall = time.perf_counter() - t0
    stop.set()
    watcher.join()
    total = procs * per_proc
    return {"processes": procs, "per_process": per_proc, "host_cap": cap, "create_cap": max(2, cap // 2),
            "hold_s": hold_s,
            "max_running_seen": seen, "created": total, "worker_exit_codes": sorted(set(codes)),
            "wall_s": round(wall, 2), "creations_per_s": round(total / wall, 2)}


# ---------------------------------------------------------------- (4) Ray


def ray_throughput(episodes: int, concurrency: int, cluster, cluster_start_s: float) -> dict[str, object]:  # noqa: ANN001
    import cloudpickle
    import rollout
    from workload import Workload

    from traject.agents.openai_policy import OpenAIPolicy
    from traject.agents.ray_rollouts import RayEpisodes
    from traject.agents.rollouts import Rollouts
    from traject.types import Status

    cloudpickle.register_pickle_by_value(rollout)  # the env's tools live in a benchmark script
    w = Workload(turns=3, tool_median_s=0.05, tool_max_s=0.5, out_median=20)
    sim = rollout.Sim()
    out: dict[str, object] = {"episodes": episodes, "concurrency": concurrency, "workload": w.to_dict()}
    out["cluster_start_s"] = round(cluster_start_s, 1)
    try:
        policy_factory = partial(OpenAIPolicy, model="sim", base_url=sim.url, max_tokens=None, request_timeout_s=600)
        for nodes in (1, 2):
            async def measure(nodes: int = nodes) -> dict[str, object]:
                remote = RayEpisodes(partial(rollout.make_env, w), policy_factory, address=cluster.address,
                                     actors=nodes, actor_concurrency=concurrency)
                async with remote:
                    placed = len(set(remote.actor_nodes()))
                    rollouts = Rollouts(policy_factory(), partial(rollout.make_env, w), concurrency=concurrency,
                                        remote=remote)
                    sim.set_workload(w)
                    t0 = time.perf_counter()
                    trajs = await rollouts.run(rollout.make_tasks(w, episodes))
                    wall = time.perf_counter() - t0
                ok = sum(1 for t in trajs if t.status is Status.COMPLETED)
                return {"nodes": placed, "completed": ok, "wall_s": round(wall, 2),
                        "episodes_per_s": round(ok / wall, 2)}

            out[f"{nodes}_node"] = anyio.run(measure)
    finally:
        sim.close()
    out["speedup_2_over_1"] = round(out["2_node"]["episodes_per_s"] / out["1_node"]["episodes_per_s"], 2)  # type: ignore[index]
    return out


# ---------------------------------------------------------------- main


def table(rows: list[tuple[str, str, str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = []
    for k, row in enumerate(rows):
        lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes: under 3 minutes")
    ap.add_argument("--sandboxes", type=int, default=None, help="concurrent sandboxes in (1) (default 24; 200)")
    ap.add_argument("--per-proc", type=int, default=None, help="sandboxes each of the 8 processes asks for")
    ap.add_argument("--cap", type=int, default=None, help="host_cap of (3) (default 16; 4 with --quick)")
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--json", default=str(Path(__file__).parent / "results" / "scale.json"))
    ap.add_argument("--admission-worker", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: daemons stopped, sandboxes closed
    if args.admission_worker:
        os.nice(10)  # the measured thing is the cap, not these processes' speed
        run, n, cap, hold = args.admission_worker
        anyio.run(_admission_worker, run, int(n), int(cap), float(hold))
        return 0

    from traject.sandboxes.hosts import docker_hosts
    from traject.testing.docker_daemon import SecondDaemon

    priority = raise_priority()
    n = args.sandboxes or (24 if args.quick else 200)
    per_proc = args.per_proc or (4 if args.quick else 64)
    run = uuid.uuid4().hex[:10]
    results: dict[str, object] = {"quick": args.quick, "priority": priority, "load_avg": os.getloadavg(),
                                  "cpus": os.cpu_count()}
    t_all = time.perf_counter()
    with SecondDaemon() as daemon:
        remote = daemon.url
        t = time.perf_counter()
        docker_hosts.ensure_image_sync(remote, SandboxConfig().image)  # once per host, not per sandbox
        results["image_to_second_daemon_s"] = round(time.perf_counter() - t, 1)
        sshd = ssh_front(daemon)  # the second daemon again, as ssh://USER@127.0.0.1:PORT
        saved_path = os.environ["PATH"]
        try:
            if sshd is not None:
                os.environ["PATH"] = sshd.client_env()["PATH"]  # its ssh client config
            results["warm_exec"] = anyio.run(warm_exec, run, remote, 100 if args.quick else 400,
                                             sshd.url if sshd else None)
        finally:
            os.environ["PATH"] = saved_path
            if sshd is not None:
                sshd.stop()
        results["concurrent"] = [anyio.run(concurrent_sandboxes, run, hosts, n)
                                 for hosts in ((docker_host(),), (docker_host(), remote))]
        cap = args.cap or (4 if args.quick else 16)
        cluster = None
        if not args.no_ray:
            # the Ray cluster starts meanwhile (this phase measures the cap, not speed)
            from traject.testing.ray_cluster import LocalRayCluster

            cluster = LocalRayCluster(nodes=2)
            started: list[float] = []
            starter = threading.Thread(target=lambda: (cluster.start(), started.append(time.perf_counter() - t0)))
            t0 = time.perf_counter()
            starter.start()
        # each sandbox is held a while, so that demand outruns the cap and the cap is what binds
        results["admission"] = admission(run, 8, per_proc, cap, 4.0)
        leaked = count_ours(docker_host(), run, running=False) + count_ours(remote, run, running=False)
    if cluster is not None:
        starter.join()
        try:
            if not started:
                raise RuntimeError("the local Ray cluster did not start")
            results["ray"] = ray_throughput(96 if args.quick else 256, 32 if args.quick else 64, cluster, started[0])
        finally:
            cluster.stop()
    results["wall_s"] = round(time.perf_counter() - t_all, 1)
    we, adm = results["warm_exec"], results["admission"]
    results.update(remote_exec_ratio=we["remote_exec_ratio"], max_running_seen=adm["max_running_seen"],  # type: ignore[index]
                   host_cap=adm["host_cap"], leaked_containers=leaked)  # type: ignore[index]
    if "ssh_exec_ratio" in we:  # type: ignore[operator]
        results["ssh_exec_ratio"] = we["ssh_exec_ratio"]  # type: ignore[index]

    rows = [("measure", "this daemon only / local", "two daemons / remote")]
    c1, c2 = results["concurrent"]  # type: ignore[misc]
    rows.append((f"sandboxes open at once (asked {n})", f"{c1['opened']} in {c1['open_s']} s",
                 f"{c2['opened']} in {c2['open_s']} s {list(c2['per_host'].values())}"))
    rows.append(("creations/s, no cap in the way", str(c1["creations_per_s"]), str(c2["creations_per_s"])))
    g1, g2 = c1["by_tenth"], c2["by_tenth"]

    def ends(xs: list[float]) -> str:
        return f"{xs[0]} -> {xs[-1]}" if xs else "-"

    for key, what in (("creations_per_s", "creations/s"), ("daemon_p50_s", "daemon create+start p50 s"),
                      ("executor_p50_s", "executor ready p50 s")):
        rows.append((f"{what}, first -> last tenth", ends(g1[key]), ends(g2[key])))
    rows.append(("warm exec p50 / p95 ms", f"{we['local (socket)']['p50_ms']} / {we['local (socket)']['p95_ms']}",  # type: ignore[index]
                 f"{we['remote (stdio)']['p50_ms']} / {we['remote (stdio)']['p95_ms']} (stdio); "  # type: ignore[index]
                 f"{we['remote (docker exec per call)']['p50_ms']} (docker exec per call)"))  # type: ignore[index]
    rows.append(("remote_exec_ratio (remote p50 / local p50)", "", str(results["remote_exec_ratio"])))
    if "ssh_exec_ratio" in we:  # type: ignore[operator]
        ssh_row = we["remote over ssh (stdio)"]  # type: ignore[index]
        rows.append(("warm exec over ssh p50 / p95 ms (ratio to local)", "",
                     f"{ssh_row['p50_ms']} / {ssh_row['p95_ms']} (x{we['ssh_exec_ratio']})"))  # type: ignore[index]
    rows.append((f"admission: 8 procs x {per_proc}, host_cap {cap}",
                 f"max running seen {adm['max_running_seen']}", f"{adm['creations_per_s']} creations/s"))  # type: ignore[index]
    if "ray" in results:
        r = results["ray"]
        rows.append((f"Ray eval, {r['episodes']} episodes (sim engine)", f"1 node: {r['1_node']['episodes_per_s']} ep/s",  # type: ignore[index]
                     f"2 nodes: {r['2_node']['episodes_per_s']} ep/s (x{r['speedup_2_over_1']})"))  # type: ignore[index]
    rows.append(("leaked traject containers", "", str(leaked)))
    print(table(rows))
    print(f"wall {results['wall_s']} s; load average at start {results['load_avg']}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.json}")
    ok = results["max_running_seen"] <= results["host_cap"] and leaked == 0  # type: ignore[operator]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
