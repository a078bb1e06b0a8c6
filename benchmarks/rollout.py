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
TrajectoryStore. GPU-busy is the engine's busy time over the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx

sys.path.insert(0, str(Path(__file__).parent))

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
                                     stdout=subprocess.PIPE, text=True, env=env, preexec_fn=_raise_priority)
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
        self.proc.terminate()
        self.proc.wait(10)


def _policy(sim: Sim, concurrency: int) -> OpenAIPolicy:
    return OpenAIPolicy(model="sim", base_url=sim.url, max_tokens=None, request_timeout_s=600)


async def run_sync(sim: Sim, w: Workload, n: int, concurrency: int) -> int:
    """(a) Turn-synchronous batching, with traject's own policy and env objects."""
    policy = _policy(sim, concurrency)
    tasks = make_tasks(w, n)
    done = 0
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
    await policy.client.close()
    return done


async def run_async(sim: Sim, w: Workload, n: int, concurrency: int, store_dir: Path) -> int:
    """(b) traject's Rollouts engine, streaming every trajectory to a store."""
    policy = _policy(sim, concurrency)
    with TrajectoryStore(store_dir / f"b-{w.turns}-{concurrency}-{time.time_ns()}.jsonl") as store:
        rollouts = Rollouts(policy, lambda: make_env(w), concurrency=concurrency, store=store)
        trajs = await rollouts.run(make_tasks(w, n))
    await policy.client.close()
    bad = [t for t in trajs if t.status is not Status.COMPLETED]
    if bad:
        raise RuntimeError(f"{len(bad)} episodes did not complete: {bad[0].status} {bad[0].error}")
    return len(trajs)


def measure(sim: Sim, mode: str, w: Workload, n: int, concurrency: int, store_dir: Path) -> Measured:
    sim.set_workload(w)
    t0 = time.perf_counter()
    if mode == "sync":
        done = anyio.run(run_sync, sim, w, n, concurrency)
    else:
        done = anyio.run(run_async, sim, w, n, concurrency, store_dir)
    wall = time.perf_counter() - t0
    s = sim.stats()
    label = "(a) turn-synchronous" if mode == "sync" else "(b) traject Rollouts"
    return Measured(label, done, wall, s["busy_s"], s["mean_batch"], int(s["requests"]), s["lag_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small episode counts (a smoke run)")
    parser.add_argument("--json", default="benchmarks/results/rollout.json")
    parser.add_argument("--big", type=int, default=1000, help="the large concurrency for (b) and (c)")
    args = parser.parse_args()
    per_slot = 1 if args.quick else 4
    configs = [(1, 64, 64 * per_slot, True), (3, 64, 64 * per_slot, True),
               (3, args.big, args.big * (1 if args.quick else 2), False)]
    sim = Sim()
    rows: list[dict[str, object]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for turns, conc, n, with_sync in configs:
                w = Workload(turns=turns)
                measured = []
                if with_sync:
                    measured.append(measure(sim, "sync", w, n, conc, Path(tmp)))
                measured.append(measure(sim, "async", w, n, conc, Path(tmp)))
                ideal = simulate(w, n, conc, "async")
                ideal_sync = simulate(w, n, conc, "sync")
                b = measured[-1]
                for m in measured:
                    rows.append({"turns": turns, "concurrency": conc, "episodes": n, "mode": m.mode,
                                 "episodes_per_s": m.episodes_per_s, "gpu_busy": m.busy_fraction,
                                 "mean_batch": m.mean_batch, "wall_s": m.wall_s, "requests": m.requests,
                                 "server_lag_s": m.lag_s})
                rows.append({"turns": turns, "concurrency": conc, "episodes": n, "mode": "(c) ideal bound",
                             "episodes_per_s": ideal.episodes_per_s, "gpu_busy": ideal.busy_fraction,
                             "mean_batch": ideal.mean_batch, "wall_s": ideal.wall_s})
                rows.append({"turns": turns, "concurrency": conc, "episodes": n,
                             "mode": "    (a) with zero overhead", "episodes_per_s": ideal_sync.episodes_per_s,
                             "gpu_busy": ideal_sync.busy_fraction, "mean_batch": ideal_sync.mean_batch,
                             "wall_s": ideal_sync.wall_s})
                summary = {"turns": turns, "concurrency": conc, "b_over_c": b.episodes_per_s / ideal.episodes_per_s}
                if with_sync:
                    summary["b_over_a"] = b.episodes_per_s / measured[0].episodes_per_s
                rows.append({"summary": summary})
                print(json.dumps(rows[-1]), flush=True)
    finally:
        sim.close()
    report(rows, args.json, Workload())


def report(rows: list[dict[str, object]], path: str, w: Workload) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="rollout throughput (episodes/s) and GPU-busy fraction")
    for col in ("turns", "conc.", "episodes", "mode", "episodes/s", "GPU busy", "mean batch", "wall s", "ratio"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    for r in rows:
        if "summary" in r:
            s = r["summary"]
            text = f"(b)/(c) = {s['b_over_c']:.2f}"  # type: ignore[index]
            if "b_over_a" in s:  # type: ignore[operator]
                text += f"   (b)/(a) = {s['b_over_a']:.2f}"  # type: ignore[index]
            table.add_row("", "", "", "", "", "", "", "", text, end_section=True)
            continue
        table.add_row(str(r["turns"]), str(r["concurrency"]), str(r["episodes"]), str(r["mode"]),
                      f"{r['episodes_per_s']:.2f}", f"{r['gpu_busy']:.3f}", f"{r['mean_batch']:.1f}",
                      f"{r['wall_s']:.1f}", "")
    Console(width=160).print(table)
    print(f"workload: {json.dumps(w.to_dict())}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({"workload": w.to_dict(), "rows": rows}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
