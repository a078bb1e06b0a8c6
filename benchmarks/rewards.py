"""Checklist scoring throughput against a judge of fixed latency.

A ScriptedChatServer (a real HTTP server on 127.0.0.1; its ThreadingHTTPServer answers
concurrent requests in threads) answers every judge call after ``--latency`` seconds. It runs
in a child process, so that its threads do not compete with the scorer for the GIL. The same
batch of trajectories is scored with the judge limited to one call in flight, then with the
default limit (``JudgeConfig.max_concurrency``), side by side in one run; every trajectory is
different, so the judge's content cache answers nothing. The ratio of the two throughputs
should approach the concurrency limit.

    python benchmarks/rewards.py [--trajectories 8] [--latency 0.05 0.2] [--out runs/bench_rewards.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from traject.rewards.checklist import ChecklistConfig, ChecklistReward  # noqa: E402
from traject.rewards.judge import JudgeConfig, LLMJudge  # noqa: E402
from traject.testing import ScriptedChatServer, ScriptedReply  # noqa: E402
from traject.types import Message, Step, Task, ToolCall, ToolResult, Trajectory  # noqa: E402

ITEMS_PER_TURN = 3
TURNS = 2
STEPS_PER_TURN = 2


def checklist() -> list[dict]:
    turns = []
    for t in range(TURNS):
        items = [{"id": f"T{t}I{i}", "question": f"Turn {t} requirement {i}?",
                  "focus_on": "assistant.tool_calls" if i == 0 else "assistant.content.user_visible_reply",
                  "pass_condition": "met", "weight": 1 / ITEMS_PER_TURN} for i in range(ITEMS_PER_TURN)]
        items[-1]["weight"] = 1 - sum(i["weight"] for i in items[:-1])
        turns.append({"turn": t, "items": items})
    return turns


def trajectory(k: int) -> Trajectory:
    messages = [Message.system("You are helpful.")]
    steps: list[Step] = []
    for t in range(TURNS):
        messages.append(Message.user(f"[{k}] request {t}"))
        for s in range(STEPS_PER_TURN):
            if s < STEPS_PER_TURN - 1:
                call = ToolCall(id=f"c{k}_{t}_{s}", name="lookup", arguments={"q": f"{k}-{t}-{s}"})
                action = Message.assistant("", tool_calls=[call])
                obs = [Message.tool(f"result {k}-{t}-{s}", tool_call_id=call.id, name="lookup")]
                results = [ToolResult(call_id=call.id, name="lookup", content=obs[0].text)]
            else:
                action, obs, results = Message.assistant(f"[{k}] answer {t}"), [], []
            messages.append(action)
            messages.extend(obs)
            steps.append(Step(index=len(steps), action=action, observations=obs, tool_results=results))
    # the user messages after the first one come in as observations of the turn's last step
    for i, st in enumerate(steps):
        if i % STEPS_PER_TURN == STEPS_PER_TURN - 1 and i + 1 < len(steps):
            st.observations = [Message.user(f"[{k}] request {i // STEPS_PER_TURN + 1}")]
    return Trajectory(task_id="bench", messages=messages, steps=steps)


VERDICT = json.dumps({"high_level_understanding_of_the_question": "q", "analysis_of_if_focus_on": "present",
                      "analysis_of_pass_condition": "met", "analysis_of_failure_examples": "none", "answer": True})


async def run_once(url: str, concurrency: int, trajs: list[Trajectory], task: Task) -> dict:
    judge = LLMJudge(JudgeConfig(base_url=url, model="judge", max_concurrency=concurrency))
    reward = ChecklistReward(judge, ChecklistConfig())
    t0, cpu0 = time.perf_counter(), time.process_time()
    results = []

    async def one(tr: Trajectory) -> None:
        results.append(await reward.score(tr, task))

    async with anyio.create_task_group() as tg:
        for tr in trajs:
            tg.start_soon(one, tr)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    await judge.aclose()
    assert all(not r.failed and abs(r.total - 1.0) < 1e-9 for r in results), [r.error for r in results]
    return {"concurrency": concurrency, "trajectories": len(trajs), "judge_calls": judge.stats.requests,
            "cache_hits": judge.stats.cache_hits, "in_flight_max": judge.stats.in_flight_max, "wall_s": wall,
            "calls_per_s": judge.stats.requests / wall, "trajectories_per_s": len(trajs) / wall,
            "scorer_cpu_ms_per_call": 1000 * cpu / max(1, judge.stats.requests)}


def _latency_reply(latency: float):
    return lambda req: ScriptedReply(content=VERDICT, delay_s=latency)


def serve(latency: float, urls: mp.Queue, stop: mp.Event) -> None:
    with ScriptedChatServer(_latency_reply(latency)) as server:
        urls.put(server.url)
        stop.wait()


async def bench_latency(latency: float, n_trajs: int) -> list[dict]:
    task = Task(id="bench", data={"checklist": checklist()})
    default_limit = JudgeConfig().max_concurrency
    rows = []
    ctx = mp.get_context("spawn")
    urls, stop = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=serve, args=(latency, urls, stop), daemon=True)
    proc.start()
    try:
        url = urls.get(timeout=60)
        for concurrency in (1, default_limit):
            # fresh, distinct trajectories per run: nothing is answered from a cache
            trajs = [trajectory(1000 * concurrency + k) for k in range(n_trajs)]
            rows.append(await run_once(url, concurrency, trajs, task))
    finally:
        stop.set()
        proc.join(10)
    base = rows[0]["calls_per_s"]
    for r in rows:
        r["speedup"] = r["calls_per_s"] / base
        r["judge_latency_s"] = latency
    return rows


async def main(args: argparse.Namespace) -> list[dict]:
    rows: list[dict] = []
    for latency in args.latency:
        rows.extend(await bench_latency(latency, args.trajectories))
    return rows


def table(rows: list[dict]) -> str:
    head = f"{'latency ms':>10} {'concurrency':>11} {'trajs':>6} {'calls':>6} {'in-flight max':>13} {'wall s':>8} {'calls/s':>9} {'trajs/s':>8} {'cpu ms/call':>11} {'speedup':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['judge_latency_s'] * 1000:>10.0f} {r['concurrency']:>11} {r['trajectories']:>6} {r['judge_calls']:>6} {r['in_flight_max']:>13} "
                     f"{r['wall_s']:>8.2f} {r['calls_per_s']:>9.1f} {r['trajectories_per_s']:>8.2f} "
                     f"{r['scorer_cpu_ms_per_call']:>11.2f} {r['speedup']:>7.1f}x")
    return "\n".join(lines)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trajectories", type=int, default=8)
    p.add_argument("--latency", type=float, nargs="+", default=[0.05, 0.2],
                   help="judge latencies per call to measure, seconds")
    p.add_argument("--out", type=Path, default=Path("runs/bench_rewards.json"))
    args = p.parse_args()
    rows = anyio.run(main, args)
    calls = TURNS * STEPS_PER_TURN * ITEMS_PER_TURN
    print(f"checklist scoring: {TURNS} turns x {STEPS_PER_TURN} steps x {ITEMS_PER_TURN} items = {calls} judge "
          f"calls per trajectory; judge concurrency 1 vs the default limit ({JudgeConfig().max_concurrency})")
    print(table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "checklist_scoring_throughput", "rows": rows}, indent=2))
    print(f"wrote {args.out}")
