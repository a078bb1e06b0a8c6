"""The framework's own time per env step: a policy and tools that answer at once, run through
traject (Rollouts -> AgentLoop -> ToolEnv -> @tool, trajectories built, rewards scored, and
optionally streamed to a TrajectoryStore), beside a raw asyncio loop that makes the same calls
(the same decision function, the same tool functions) with plain dicts and nothing else.

    PYTHONPATH=. python benchmarks/overhead.py [--episodes 2000] [--steps 5] [--json out.json]

The target is under 1 ms of traject per step on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).parent))

from priority import raise_priority  # noqa: E402

from traject.agents.policy import PolicyOutput
from traject.agents.rollouts import Rollouts
from traject.agents.store import TrajectoryStore
from traject.environments.tool_env import ToolEnv
from traject.rewards.answer_match import AnswerMatch
from traject.tools import ToolOutput, tool
from traject.types import Message, Task, ToolCall, ToolSchema


def decide(turn: int, steps: int) -> tuple[str, dict[str, Any]]:
    """The policy's whole brain: look up on every turn but the last, then submit."""
    return ("submit", {"answer": 7}) if turn == steps - 1 else ("lookup", {"key": f"k{turn}"})


async def lookup_fn(key: str) -> str:
    return f"value of {key}"


async def submit_fn(answer: int) -> ToolOutput:
    return ToolOutput(content="Submitted.", done=True, final_answer=str(answer))


def lookup_impl(key: str) -> str:
    return f"value of {key}"


@tool
async def lookup(key: str) -> str:
    """Look a key up.

    Args:
        key: The key.
    """
    return await lookup_fn(key)


@tool
async def submit(answer: int) -> ToolOutput:
    """Submit the answer.

    Args:
        answer: The answer.
    """
    return await submit_fn(answer)


class InstantPolicy:
    def __init__(self, steps: int) -> None:
        self.steps = steps

    async def act(self, messages: list[Message], tools: list[ToolSchema]) -> PolicyOutput:
        turn = sum(1 for m in messages if m.role == "assistant")
        name, args = decide(turn, self.steps)
        return PolicyOutput(message=Message.assistant("", tool_calls=[ToolCall(name=name, arguments=args)]),
                            prompt_tokens=10, completion_tokens=5)


def tasks(n: int) -> list[Task]:
    return [Task(id=f"t{i}", prompt=f"Find the answer to question {i}.", answer=7) for i in range(n)]


async def run_traject(n: int, steps: int, concurrency: int, store_path: Path | None) -> int:
    def make_env() -> ToolEnv:
        return ToolEnv([lookup, submit], name="overhead", system_prompt="You look things up.",
                       max_turns=steps + 1, reward=AnswerMatch())

    store = TrajectoryStore(store_path) if store_path else None
    try:
        rollouts = Rollouts(InstantPolicy(steps), make_env, concurrency=concurrency, store=store)
        trajs = await rollouts.run(tasks(n))
    finally:
        if store:
            store.close()
    assert all(t.num_turns == steps and t.success for t in trajs), "the traject run went wrong"
    return sum(t.num_turns for t in trajs)


async def run_raw(n: int, steps: int, concurrency: int) -> int:
    """The same calls with no framework: dict messages, direct tool calls, the same concurrency."""
    tools = {"lookup": lookup_fn, "submit": submit_fn}
    limiter = anyio.Semaphore(concurrency)
    total = 0
    results: list[dict[str, Any]] = []

    async def episode(task: Task) -> None:
        nonlocal total
        async with limiter:
            messages: list[dict[str, Any]] = [{"role": "system", "content": "You look things up."},
                                              {"role": "user", "content": task.prompt}]
            final = None
            for turn in range(steps):
                name, args = decide(turn, steps)
                messages.append({"role": "assistant", "content": "", "tool_calls": [{"name": name, "arguments": args}]})
                out = await tools[name](**args)
                content = out.content if isinstance(out, ToolOutput) else out
                messages.append({"role": "tool", "name": name, "content": content})
                total += 1
                if isinstance(out, ToolOutput) and out.done:
                    final = out.final_answer
                    break
            results.append({"task": task.id, "messages": messages, "success": final == str(task.answer)})

    async with anyio.create_task_group() as tg:
        for task in tasks(n):
            tg.start_soon(episode, task)
    assert all(r["success"] for r in results)
    return total


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn: Any, *args: Any) -> tuple[float, float, int]:
    t0, c0 = time.perf_counter(), _cpu()
    steps = anyio.run(fn, *args)
    return time.perf_counter() - t0, _cpu() - c0, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="best of N, to shed noise from other processes")
    parser.add_argument("--json", default="benchmarks/results/overhead.json")
    parser.add_argument("--no-priority", action="store_true", help="do not raise this process's priority")
    args = parser.parse_args()
    # The machine may be shared: a descheduled process measures the machine's load. Both loops
    # run in this process, at the same priority.
    priority = "unchanged" if args.no_priority else raise_priority()
    n, steps, conc = args.episodes, args.steps, args.concurrency
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        variants = [
            ("raw asyncio loop (no traject)", lambda: timed(run_raw, n, steps, conc)),
            ("traject Rollouts", lambda: timed(run_traject, n, steps, conc, None)),
            ("traject Rollouts + TrajectoryStore (fsync)",
             lambda: timed(run_traject, n, steps, conc, Path(tmp) / f"s{time.perf_counter_ns()}.jsonl")),
        ]
        timed(run_traject, 50, steps, conc, None)  # warm imports and caches
        for name, fn in variants:
            best = min((fn() for _ in range(args.repeats)), key=lambda r: r[0])
            wall, cpu, total = best
            rows[name] = {"us_per_step": 1e6 * wall / total, "cpu_us_per_step": 1e6 * cpu / total,
                          "steps": total, "wall_s": wall}
    raw = rows["raw asyncio loop (no traject)"]["us_per_step"]
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"time per env step ({n} episodes x {steps} steps, concurrency {conc}, best of {args.repeats})")
    for col in ("loop", "us/step (wall)", "CPU us/step", "traject's own us/step", "target < 1000 us"):
        table.add_column(col, justify="left" if col == "loop" else "right")
    for name, r in rows.items():
        own = r["us_per_step"] - raw
        is_raw = name.startswith("raw")
        table.add_row(name, f"{r['us_per_step']:.1f}", f"{r['cpu_us_per_step']:.1f}",
                      "-" if is_raw else f"{own:.1f}", "-" if is_raw else ("yes" if r["us_per_step"] < 1000 else "NO"))
        r["own_us_per_step"] = 0.0 if is_raw else own
    Console(width=140).print(table)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    host = {"load_avg": os.getloadavg()[0], "cpus": os.cpu_count(), "priority": priority}
    print(f"host: {json.dumps(host)}")
    Path(args.json).write_text(json.dumps({"episodes": n, "steps": steps, "concurrency": conc, "host": host,
                                           "rows": rows}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
