"""HFPolicy on CPU: micro-batching concurrent episodes vs one request at a time; prompt rendering.

Table 1 (generation): G concurrent ``act`` calls, as the G episodes of a group make them, on
the locally built tiny model. Each configuration runs the same requests (same prompts, same
seeds): ``serial`` has ``max_batch_size=1`` (requests run one after another in the worker
thread), ``batched`` has ``max_batch_size=G``. Stop tokens are disabled so every completion
has exactly ``--new-tokens`` tokens and the work is identical. Then whole ``lookup`` episodes
through Rollouts (group of G, stops on), serial vs batched.

Table 2 (rendering): the per-turn cost of ChatRenderer.render_prompt (tokens reused, delta
rendered) against rendering and tokenising the whole conversation afresh, on a conversation
that grows turn by turn.

    python benchmarks/hf_policy.py [--group 8] [--new-tokens 48] [--repeats 3] [--threads 1]
                                   [--out runs/bench_hf_policy.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from traject.agents import Rollouts  # noqa: E402
from traject.agents.hf import HFPolicy, build_tiny_model  # noqa: E402
from traject.environments.builtin.lookup import SYSTEM_PROMPT, lookup, lookup_tasks, submit  # noqa: E402
from traject.episode import EpisodeInfo, reset_episode, set_episode  # noqa: E402
from traject.types import Generation, Message, ToolCall  # noqa: E402

TOOLS = [lookup.schema, submit.schema]


async def concurrent_acts(policy: HFPolicy, prompts: list[list[Message]]) -> float:
    async def one(i: int, msgs: list[Message]) -> None:
        token = set_episode(EpisodeInfo(episode_id=f"e{i}", task_id="bench", sample_index=i, seed=1000 + i))
        try:
            await policy.act(msgs, TOOLS)
        finally:
            reset_episode(token)

    t0 = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for i, msgs in enumerate(prompts):
            tg.start_soon(one, i, msgs)
    return time.perf_counter() - t0


def bench_generation(path: Path, group: int, new_tokens: int, repeats: int) -> list[dict]:
    tasks = lookup_tasks("test", n=group, seed=0)
    prompts = [[Message.system(SYSTEM_PROMPT), Message.user(str(t.prompt))] for t in tasks]
    rows = []
    for name, batch in (("serial", 1), ("batched", group)):
        policy = HFPolicy.from_pretrained(path, max_new_tokens=new_tokens, stop_token_ids=[],
                                          max_batch_size=batch, batch_wait_s=0.005)
        anyio.run(concurrent_acts, policy, prompts[:1])  # warm-up
        times = [anyio.run(concurrent_acts, policy, prompts) for _ in range(repeats)]
        wall = statistics.median(times)
        rows.append({"table": "generation", "config": name, "max_batch_size": batch, "requests": group,
                     "new_tokens_each": new_tokens, "wall_s": wall, "tokens_per_s": group * new_tokens / wall,
                     "mean_batch": policy.batcher.stats.mean_batch_size})
    return rows


def bench_episodes(path: Path, group: int, new_tokens: int, repeats: int) -> list[dict]:
    tasks = lookup_tasks("test", n=2, seed=0)
    rows = []
    for name, batch in (("serial", 1), ("batched", group)):
        walls, tokens = [], []
        policy = HFPolicy.from_pretrained(path, max_new_tokens=new_tokens, max_batch_size=batch, batch_wait_s=0.005)
        for _ in range(repeats):
            t0 = time.perf_counter()
            trajs = anyio.run(Rollouts(policy, "lookup", group_size=group, seed=5).run, tasks)
            walls.append(time.perf_counter() - t0)
            tokens.append(sum(t.usage.completion_tokens for t in trajs))
        wall = statistics.median(walls)
        rows.append({"table": "episodes", "config": name, "max_batch_size": batch, "episodes": len(trajs),
                     "completion_tokens": tokens[0], "wall_s": wall, "tokens_per_s": tokens[0] / wall,
                     "mean_batch": policy.batcher.stats.mean_batch_size})
    return rows


def bench_rendering(path: Path, turns: int, repeats: int) -> list[dict]:
    policy = HFPolicy.from_pretrained(path)
    r = policy.renderer
    msgs = [Message.system(SYSTEM_PROMPT), Message.user("How much do 2 fig and 3 kiwi cost in total?")]
    for k in range(turns):  # a conversation whose assistant turns carry their tokens
        prompt = r.render_prompt(msgs, TOOLS)
        call = ToolCall(name="lookup", arguments={"item": f"item{k}"})
        text = f'<tool_call>\n{{"name": "lookup", "arguments": {{"item": "item{k}"}}}}\n</tool_call>'
        gen = Generation(prompt_ids=prompt.ids, completion_ids=r.encode(text) + [r.end_of_turn_id])
        msgs += [Message.assistant("", tool_calls=[call], generation=gen),
                 Message.tool(str(k), tool_call_id=call.id, name="lookup")]
    n = 20 * repeats
    t0 = time.perf_counter()
    for _ in range(n):
        p = r.render_prompt(msgs, TOOLS)
    incremental = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for _ in range(n):
        r.encode(r.render_text(msgs, TOOLS, add_generation_prompt=True))
    fresh = (time.perf_counter() - t0) / n
    return [{"table": "rendering", "config": "render_prompt (reuse + delta)", "turns": turns,
             "prompt_tokens": len(p.ids), "ms_per_call": incremental * 1e3},
            {"table": "rendering", "config": "fresh render + tokenise", "turns": turns,
             "prompt_tokens": len(p.ids), "ms_per_call": fresh * 1e3}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--turns", type=int, default=6, help="conversation length for the rendering table")
    ap.add_argument("--model-dir", type=Path, default=None, help="where to build the tiny model (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=Path("runs/bench_hf_policy.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_model(args.model_dir or Path(tmp) / "tiny")
        rows = (bench_generation(path, args.group, args.new_tokens, args.repeats)
                + bench_episodes(path, args.group, args.new_tokens, args.repeats)
                + bench_rendering(path, args.turns, args.repeats))

    gen = {r["config"]: r for r in rows if r["table"] == "generation"}
    eps = {r["config"]: r for r in rows if r["table"] == "episodes"}
    ren = [r for r in rows if r["table"] == "rendering"]
    print(f"\nGeneration: {args.group} concurrent act() calls x {args.new_tokens} tokens, torch threads={args.threads}")
    print(f"{'config':<10} {'batch':>5} {'wall s':>8} {'tok/s':>8} {'mean batch':>10}")
    for r in gen.values():
        print(f"{r['config']:<10} {r['max_batch_size']:>5} {r['wall_s']:>8.3f} {r['tokens_per_s']:>8.1f} {r['mean_batch']:>10.2f}")
    print(f"batched / serial throughput: {gen['batched']['tokens_per_s'] / gen['serial']['tokens_per_s']:.2f}x")
    print(f"\nEpisodes: lookup env, 2 tasks x group {args.group}, up to {args.new_tokens} tokens a turn")
    print(f"{'config':<10} {'batch':>5} {'episodes':>8} {'tokens':>7} {'wall s':>8} {'tok/s':>8} {'mean batch':>10}")
    for r in eps.values():
        print(f"{r['config']:<10} {r['max_batch_size']:>5} {r['episodes']:>8} {r['completion_tokens']:>7} "
              f"{r['wall_s']:>8.3f} {r['tokens_per_s']:>8.1f} {r['mean_batch']:>10.2f}")
    print(f"batched / serial throughput: {eps['batched']['tokens_per_s'] / eps['serial']['tokens_per_s']:.2f}x")
    print(f"\nRendering: a {args.turns}-turn conversation ({ren[0]['prompt_tokens']} prompt tokens)")
    for r in ren:
        print(f"{r['config']:<32} {r['ms_per_call']:>8.3f} ms/call")
    print(f"render_prompt / fresh: {ren[0]['ms_per_call'] / ren[1]['ms_per_call']:.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
