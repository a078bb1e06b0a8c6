"""Rollout throughput: turn-synchronous batching vs traject's async Rollouts engine vs the
ideal bound, on one simulated workload (benchmarks/workload.py), in one run.

    PYTHONPATH=. python benchmarks/rollout.py [--quick] [--json out.json]

(a) turn-synchronous batching, the old VerlTool baseline: waves of ``concurrency`` episodes;
    turn k's generation is sent for the whole wave and waited for, then every tool call of
    the wave runs and is waited for, then turn k+1. Same policy, env and tools as (b).
(b) traject's Rollouts engine: ``concurrency`` episodes in flight, each on its own.
(c) the ideal bound: the same engine model and the same draws in virtual time with runners
    that cost nothing (model busy whenever work is ready, tools overlapped).

Both (a) and (b) talk HTTP to benchmarks/sim_server.py (a separate process) through
OpenAIPolicy, run the tools through ToolEnv, and (b) writes every trajectory to a
TrajectoryStore. GPU-busy is the engine's busy time over the wall time; the wall time runs
from the first request to the last episode's end.

(c) reads "model always busy, tools fully overlapped" as: the engine never waits on the
runner, and one episode's tool calls overlap other episodes' generation. At a given
concurrency an episode still waits for its own tools, so the engine can run short of work;
the script also prints the model-only ceiling (every slot decoding all the time) for context.

Other jobs may share the machine: the script runs in its own session at a raised priority
(benchmarks/priority.py; the simulator too) where it may (root), so that it measures traject
rather than the machine's load; both (a) and (b) run in the same process at the same
priority. The host's load is recorded in the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx

sys.path.insert(0, str(Path(__file__).parent))

from priority import raise_priority  # noqa: E402
from workload import Workload, simulate  # noqa: E402

from traject.agents.openai_policy import OpenAIPolicy  # noqa: E402
from traject.agents.rollouts import Rollouts  # noqa: E402
from traject.agents.store import TrajectoryStore  # noqa: E402
from traject.environments.tool_env import ToolEnv  # noqa: E402
from traject.tools import ToolContext, ToolOutput, tool  # noqa: E402
from traject.types import Status, Task  # noqa: E402

OBSERVATION = "result " * 40


@tool
async def work(ctx: ToolContext) -> str:
    """Do one unit of work (its latency comes from the workload)."""
    k = ctx.state.get("turn", 0)
    ctx.state["turn"] = k + 1
    await anyio.sleep(ctx.task.data["tool_s"][k])
    return OBSERVATION


@tool
async def submit(ctx: ToolContext, answer: int) -> ToolOutput:
    """Submit and end the episode.

    Args:
        answer: The answer.
    """
    k = ctx.state.get("turn", 0)
    await anyio.sleep(ctx.task.data["tool_s"][k])
    return ToolOutput(content="Submitted.", done=True, final_answer=str(answer))


def make_env(w: Workload) -> ToolEnv:
    return ToolEnv([work, submit], name="sim", system_prompt="You are a worker.", max_turns=w.turns + 1,
                   tool_timeout_s=120)


def make_tasks(w: Workload, n: int) -> list[Task]:
    return [Task(id=f"ep{i}", prompt=f"Run episode {i}.", data={"tool_s": [w.tool_s(i, k) for k in range(w.turns)]})
            for i in range(n)]


@dataclass
class Measured:
    mode: str
    episodes: int
    wall_s: float
    busy_s: float
    mean_batch: float
    requests: int
    lag_s: float = 0.0
    client_cpu_ms: float = 0.0

    @property
    def episodes_per_s(self) -> float:
        return self.episodes / self.wall_s

    @property
    def busy_fraction(self) -> float:
        return self.busy_s / self.wall_s


def _raise_priority() -> None:
    try:
        os.nice(-10)
    except OSError:
        pass


class Sim:
    def __init__(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # The server stands in for an inference engine on its own hardware: it must not be starved
        # of CPU by the client it serves (or by anything else on this machine), so it runs at a
        # higher priority where that is allowed.
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / "sim_server.py")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                     preexec_fn=_raise_priority)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("PORT "):
            raise RuntimeError(f"the simulator server did not start: {line!r}")
        self.base = f"http://127.0.0.1:{int(line.split()[1])}"
        self.url = self.base + "/v1"

    def set_workload(self, w: Workload) -> None:
        httpx.post(self.base + "/sim/workload", json=w.to_dict()).raise_for_status()

    def stats(self) -> dict[str, float]:
        return httpx.get(self.base + "/sim/stats").json()

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.terminate()
        self.proc.wait(10)


def _policy(sim: Sim, concurrency: int) -> OpenAIPolicy:
    return OpenAIPolicy(model="sim", base_url=sim.url, max_tokens=None, request_timeout_s=600,
                        return_token_ids=False)  # the simulated engine samples no tokens


async def run_sync(sim: Sim, w: Workload, n: int, concurrency: int) -> tuple[int, float]:
    """(a) Turn-synchronous batching, with traject's own policy and env objects."""
    policy = _policy(sim, concurrency)
    tasks = make_tasks(w, n)
    done = 0
    sim.set_workload(w)
    t0 = time.perf_counter()
    for start in range(0, n, concurrency):
        wave = tasks[start:start + concurrency]
        envs = [make_env(w) for _ in wave]
        messages = [list(await env.reset(t)) for env, t in zip(envs, wave, strict=True)]
        active = list(range(len(wave)))
        while active:
            outs: dict[int, object] = {}
            async with anyio.create_task_group() as tg:       # generation: the whole wave, then a barrier
                for i in active:
                    async def gen(i: int = i) -> None:
                        outs[i] = await policy.act(messages[i], envs[i].tools)
                    tg.start_soon(gen)
            results: dict[int, object] = {}
            async with anyio.create_task_group() as tg:       # tools: the whole wave, then a barrier
                for i in active:
                    async def step(i: int = i) -> None:
                        action = outs[i].message  # type: ignore[attr-defined]
                        messages[i].append(action)
                        results[i] = await envs[i].step(action)
                        messages[i].extend(results[i].observations)  # type: ignore[attr-defined]
                    tg.start_soon(step)
            finished = [i for i in active if results[i].done]  # type: ignore[attr-defined]
            done += len(finished)
            active = [i for i in active if i not in finished]
        for env in envs:
            await env.aclose()
    wall = time.perf_counter() - t0
    await policy.aclose()
    return done, wall


async def run_async(sim: Sim, w: Workload, n: int, concurrency: int, store_dir: Path) -> tuple[int, float]:
    """(b) traject's Rollouts engine, streaming every trajectory to a store."""
    policy = _policy(sim, concurrency)
    tasks = make_tasks(w, n)
    with TrajectoryStore(store_dir / f"b-{w.turns}-{concurrency}-{time.time_ns()}.jsonl") as store:
        rollouts = Rollouts(policy, lambda: make_env(w), concurrency=concurrency, store=store)
        sim.set_workload(w)
        t0 = time.perf_counter()
        trajs = await rollouts.run(tasks)
        wall = time.perf_counter() - t0
    await policy.aclose()
    bad = [t for t in trajs if t.status is not Status.COMPLETED]
    if bad:
        raise RuntimeError(f"{len(bad)} episodes did not complete: {bad[0].status} {bad[0].error}")
    return len(trajs), wall


def measure(sim: Sim, mode: str, w: Workload, n: int, concurrency: int, store_dir: Path) -> Measured:
    # Only the rollout itself is timed: from the first request to the last episode's end
    # (the policy's client, the tasks and the store are made before the clock starts).
    if mode == "sync":
        done, wall = anyio.run(run_sync, sim, w, n, concurrency)
    else:
        done, wall = anyio.run(run_async, sim, w, n, concurrency, store_dir)
    s = sim.stats()
    label = "(a) turn-synchronous" if mode == "sync" else "(b) traject Rollouts"
    return Measured(label, done, wall, s["busy_s"], s["mean_batch"], int(s["requests"]), s["lag_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small episode counts (a smoke run)")
    parser.add_argument("--json", default="benchmarks/results/rollout.json")
    parser.add_argument("--turns", default="1,3", help="turns per episode to measure at --concurrency")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--big", type=int, default=1000, help="a large concurrency, measured at the most turns (0: skip)")
    parser.add_argument("--episodes-per-slot", type=int, default=4, help="episodes = concurrency x this (2 at --big)")
    parser.add_argument("--no-priority", action="store_true", help="do not raise this process's priority")
    args = parser.parse_args()
    raised = "unchanged" if args.no_priority else raise_priority()
    load_before = os.getloadavg()[0]
    per_slot = 1 if args.quick else args.episodes_per_slot
    turns = [int(t) for t in args.turns.split(",")]
    configs = [(t, args.concurrency, args.concurrency * per_slot) for t in turns]
    if args.big:
        configs.append((max(turns), args.big, args.big * (1 if args.quick else max(1, per_slot // 2))))
    sim = Sim()
    rows: list[dict[str, object]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for turns, conc, n in configs:
                w = Workload(turns=turns)
                measured = []
                for mode in ("sync", "async"):
                    c0 = _cpu()
                    m = measure(sim, mode, w, n, conc, Path(tmp))
                    m.client_cpu_ms = 1e3 * (_cpu() - c0) / n
                    measured.append(m)
                ideal = simulate(w, n, conc, "async")
                ideal_sync = simulate(w, n, conc, "sync")
                b = measured[-1]
                for m in measured:
                    rows.append({"turns": turns, "concurrency": conc, "episodes": n, "mode": m.mode,
                                 "episodes_per_s": m.episodes_per_s, "gpu_busy": m.busy_fraction,
                                 "mean_batch": m.mean_batch, "wall_s": m.wall_s, "requests": m.requests,
                                 "server_lag_s": m.lag_s, "client_cpu_ms_per_episode": m.client_cpu_ms})
                rows.append({"turns": turns, "concurrency": conc, "episodes": n, "mode": "(c) ideal bound",
                             "episodes_per_s": ideal.episodes_per_s, "gpu_busy": ideal.busy_fraction,
                             "mean_batch": ideal.mean_batch, "wall_s": ideal.wall_s})
                rows.append({"turns": turns, "concurrency": conc, "episodes": n,
                             "mode": "    (a) with zero overhead", "episodes_per_s": ideal_sync.episodes_per_s,
                             "gpu_busy": ideal_sync.busy_fraction, "mean_batch": ideal_sync.mean_batch,
                             "wall_s": ideal_sync.wall_s})
                summary = {"turns": turns, "concurrency": conc, "b_over_c": b.episodes_per_s / ideal.episodes_per_s,
                           "b_over_a": b.episodes_per_s / measured[0].episodes_per_s,
                           "model_bound_episodes_per_s": model_bound(w, conc)}
                rows.append({"summary": summary})
                print(json.dumps(rows[-1]), flush=True)
    finally:
        sim.close()
    host = {"priority": raised, "load_avg_before": load_before, "load_avg_after": os.getloadavg()[0],
            "cpus": os.cpu_count()}
    report(rows, args.json, Workload(), host)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def model_bound(w: Workload, concurrency: int) -> float:
    """Episodes/s if every one of min(concurrency, max_batch) slots decoded all the time (no
    slot ever waiting on a tool): a ceiling no runner can reach while episodes spend time in
    tools, printed for context only."""
    batch = min(concurrency, w.max_batch)
    sample = [w.out_tokens(e, k) for e in range(2000) for k in range(w.turns)]
    tokens_per_episode = w.turns * sum(sample) / len(sample)
    return batch / w.step_s(batch, 0) / tokens_per_episode


def report(rows: list[dict[str, object]], path: str, w: Workload, host: dict[str, object]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="rollout throughput (episodes/s) and GPU-busy fraction")
    cols = ("turns", "conc.", "episodes", "mode", "episodes/s", "GPU busy", "mean batch", "wall s",
            "client CPU ms/ep", "server lag s", "ratios")
    for col in cols:
        table.add_column(col, justify="left" if col in ("mode", "ratios") else "right")
    blank = [""] * (len(cols) - 1)
    for r in rows:
        if "summary" in r:
            s = r["summary"]
            text = f"(b)/(a) = {s['b_over_a']:.2f}   (b)/(c) = {s['b_over_c']:.2f}"  # type: ignore[index]
            table.add_row(*blank, text, end_section=True)
            continue
        real = "client_cpu_ms_per_episode" in r
        table.add_row(str(r["turns"]), str(r["concurrency"]), str(r["episodes"]), str(r["mode"]),
                      f"{r['episodes_per_s']:.2f}", f"{r['gpu_busy']:.3f}", f"{r['mean_batch']:.1f}",
                      f"{r['wall_s']:.1f}", f"{r['client_cpu_ms_per_episode']:.1f}" if real else "",
                      f"{r['server_lag_s']:.2f}" if real else "", "")
    Console(width=180).print(table)
    for r in rows:
        if "summary" in r:
            s = r["summary"]
            print(f"turns {s['turns']}, concurrency {s['concurrency']}: model-only ceiling (every slot decoding, "  # type: ignore[index]
                  f"never waiting on a tool) {s['model_bound_episodes_per_s']:.2f} episodes/s")  # type: ignore[index]
    print(f"workload: {json.dumps(w.to_dict())}")
    print(f"host: {json.dumps(host)}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({"workload": w.to_dict(), "host": host, "rows": rows}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
