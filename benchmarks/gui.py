"""GUI env hot paths against the machine's headless Chromium, side by side in one run.

1. Step latency: one GUI step (the action, the page's state, the screenshot observation), and
   its parts measured alone (the mouse click, the screenshot, the DOM listing), over ``--steps``
   clicks that toggle a checkbox (the episode never ends).
2. Episodes per second: the scripted oracle solves ``--episodes`` built-in tasks with
   ``--concurrency`` episodes at once, on 1, 2, ... browsers (``--browsers``), and with the warm
   spare page off and on. ``--think`` adds a policy latency per turn (a model's time), during
   which the pool prepares the next episode's page.

    python benchmarks/gui.py [--steps 40] [--episodes 16] [--concurrency 4] [--browsers 1 2] \
        [--think 0.0] [--out runs/bench_gui.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from traject.agents.gui_oracle import GuiOracle  # noqa: E402
from traject.agents.rollouts import Rollouts  # noqa: E402
from traject.environments.gui import BrowserConfig, GuiEnv, close_browsers, gui_tasks, parse_dom  # noqa: E402
from traject.types import Message, ToolCall  # noqa: E402


def stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"mean_ms": 1000 * statistics.fmean(ordered), "p50_ms": 1000 * ordered[len(ordered) // 2],
            "p95_ms": 1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], "n": len(ordered)}


async def step_latency(steps: int) -> list[dict]:
    task = gui_tasks(names=["check-boxes"])[0]
    rows = []
    for observation in (["screenshot"], ["screenshot", "dom"]):
        env = GuiEnv(observation=observation, max_turns=steps + 10)
        messages = await env.reset(task)
        if "dom" in observation:
            label = next(e for e in parse_dom(messages[-1].text.split("Elements:", 1)[1]) if e.tag == "label")
            x, y = label.center
        else:
            x, y = 40, 76  # the first checkbox's label on this page
        click = Message.assistant(tool_calls=[ToolCall(name="click", arguments={"x": x, "y": y})])
        samples = []
        for _ in range(steps):
            t0 = time.perf_counter()
            result = await env.step(click)
            samples.append(time.perf_counter() - t0)
            assert not result.done
        rows.append({"what": f"step: click + {'+'.join(observation)} observation", **stats(samples)})
        if observation == ["screenshot"]:
            page = env.page
            assert page is not None
            for what, fn in (("click alone", lambda: page.page.mouse.click(x, y)),
                             ("screenshot alone", page.screenshot),
                             ("DOM listing alone", page.dom)):
                samples = []
                for _ in range(steps):
                    t0 = time.perf_counter()
                    await fn()
                    samples.append(time.perf_counter() - t0)
                rows.append({"what": what, **stats(samples)})
        await env.aclose()
    await close_browsers()
    return rows


class ThinkingOracle(GuiOracle):
    def __init__(self, think: float) -> None:
        super().__init__("tools")
        self.think = think

    async def act(self, messages, tools):
        if self.think:
            await anyio.sleep(self.think)
        return await super().act(messages, tools)


async def episodes_per_second(episodes: int, concurrency: int, browsers: list[int], think: float) -> list[dict]:
    tasks = gui_tasks(n=episodes, seed=11)
    rows = []
    settings = [(n, True) for n in browsers] + [(browsers[0], False)]
    for n, prewarm in settings:
        config = BrowserConfig(browsers=n, prewarm=prewarm, idle_close_s=60)
        make = lambda: GuiEnv(observation=["screenshot", "dom"], browser=config)  # noqa: E731
        # Launch the browsers first: the run measures episodes, not browser start-up.
        warm = await Rollouts(ThinkingOracle(0), make, concurrency=n).run(gui_tasks(n=n, seed=99))
        assert all(t.reward and t.reward.total == 1.0 for t in warm)
        t0 = time.perf_counter()
        trajs = await Rollouts(ThinkingOracle(think), make, concurrency=concurrency).run(tasks)
        wall = time.perf_counter() - t0
        solved = sum(1 for t in trajs if t.reward is not None and t.reward.total == 1.0)
        turns = sum(len(t.steps) for t in trajs)
        rows.append({"browsers": n, "prewarm": prewarm, "concurrency": concurrency, "episodes": len(trajs),
                     "solved": solved, "turns": turns, "wall_s": wall, "episodes_per_s": len(trajs) / wall,
                     "think_s": think})
        await close_browsers()
    return rows


def print_table(title: str, rows: list[dict], columns: list[str]) -> None:
    print(f"\n{title}")
    widths = [max(len(c), *(len(fmt(r.get(c))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print("  ".join(fmt(r.get(c)).ljust(w) for c, w in zip(columns, widths)))


def fmt(v: object) -> str:
    return f"{v:.2f}" if isinstance(v, float) else str(v)


async def main(args: argparse.Namespace) -> dict:
    latency = await step_latency(args.steps)
    print_table(f"GUI step latency ({args.steps} steps, 360x360 screen)", latency,
                ["what", "mean_ms", "p50_ms", "p95_ms", "n"])
    throughput = await episodes_per_second(args.episodes, args.concurrency, args.browsers, args.think)
    print_table(f"Episodes per second (oracle, {args.episodes} built-in tasks, think {args.think:g}s per turn)",
                throughput, ["browsers", "prewarm", "concurrency", "episodes", "solved", "turns", "wall_s",
                             "episodes_per_s"])
    base = throughput[0]["episodes_per_s"]
    for r in throughput:
        r["speedup_vs_first"] = r["episodes_per_s"] / base
    print("speed-up vs the first row: " + ", ".join(
        f"{r['browsers']} browser(s){'' if r['prewarm'] else ' no prewarm'}: {r['speedup_vs_first']:.2f}x"
        for r in throughput))
    return {"benchmark": "gui", "step_latency": latency, "episodes": throughput}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--episodes", type=int, default=16)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--browsers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--think", type=float, default=0.0)
    p.add_argument("--out", type=Path, default=Path("runs/bench_gui.json"))
    args = p.parse_args()
    result = anyio.run(main, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
