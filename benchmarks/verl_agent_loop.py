"""Per-trajectory cost of TrajectAgentLoop against veRL's own ToolAgentLoop, side by side.

Both run inside veRL's AgentLoopWorker (in-process) on the same tiny local tokenizer, the same
exported lookup tasks and the same scripted rollout client, each trajectory making the same
number of turns (look up each item, then submit). The difference is the agent-loop layer:
traject's env, tools, reward and TokenView against veRL's tool parser and function tools.

    python benchmarks/verl_agent_loop.py [--tasks 16] [--group 4] [--repeats 5]

Prints a table and writes benchmarks/results/verl_agent_loop.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=16)
    ap.add_argument("--group", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(HERE / "results" / "verl_agent_loop.json"))
    args = ap.parse_args()

    import uuid

    import numpy as np
    import verl
    from hydra import compose, initialize_config_dir
    from transformers import AutoTokenizer
    from verl.experimental.agent_loop import AgentLoopWorker
    from verl.protocol import DataProto
    from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

    from traject.environments.registry import load_tasks
    from traject.agents.hf import build_tiny_model
    from traject.trainers.config import config_from_dict
    from traject.trainers.verl.dataset import export_tasks
    from traject.trainers.verl.launcher import hydra_overrides, prepare
    from traject.trainers.verl.testing import LookupSolver, ScriptedServerClient

    work = Path(tempfile.mkdtemp(prefix="verl-bench-"))
    model = build_tiny_model(work / "model")
    cfg = config_from_dict({
        "backend": "verl", "model": {"path": str(model), "max_seq_len": 2048},
        "env": {"name": "lookup", "tasks": {"split": "train", "n": args.tasks, "seed": 0}},
        "eval": {"tasks": {}}, "rollout": {"group_size": args.group, "tasks_per_step": args.tasks},
        "trainer": {"out_dir": str(work / "run"), "save_trajectories": False}, "verl": {"max_prompt_length": 1024}})
    files = prepare(cfg)
    tool_agent_file = export_tasks(load_tasks("lookup", split="train", n=args.tasks, seed=0),
                                   work / "tool_agent.parquet", env="lookup", agent_name="tool_agent")
    base = hydra_overrides(cfg, files)
    verl_extra = [f"actor_rollout_ref.rollout.multi_turn.function_tool_path={HERE / 'verl_lookup_tools.py'}",
                  "actor_rollout_ref.rollout.multi_turn.format=hermes",
                  # lookup x2 + submit, then stop (traject's env ends on submit by itself)
                  "actor_rollout_ref.rollout.multi_turn.max_assistant_turns=3"]
    config_dir = str(Path(verl.__file__).parent / "trainer" / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        conf_traject = compose(config_name="ppo_trainer", overrides=base)
        conf_verl = compose(config_name="ppo_trainer", overrides=base + verl_extra)
    tok = AutoTokenizer.from_pretrained(model)

    def batch_of(conf, parquet):
        ds = RLHFDataset(data_files=[str(parquet)], tokenizer=tok, config=conf.data, processor=None)
        b = DataProto.from_single_dict(collate_fn([ds[i] for i in range(len(ds))]))
        b.non_tensor_batch["uid"] = np.array([str(uuid.uuid4()) for _ in range(len(b))], dtype=object)
        return b.repeat(repeat_times=args.group, interleave=True)

    arms = {"verl ToolAgentLoop": (conf_verl, tool_agent_file), "traject TrajectAgentLoop": (conf_traject, files.train_file)}
    results = {}

    async def run_all():
        workers = {}
        for name, (conf, parquet) in arms.items():
            client = ScriptedServerClient(conf, LookupSolver(modes=("correct",)), str(model))
            workers[name] = (client, AgentLoopWorker(conf, client), conf, parquet)
            await workers[name][1].generate_sequences(batch_of(conf, parquet))  # warm-up
        samples = {name: {"times": [], "turns": [], "tokens": []} for name in arms}
        for _ in range(args.repeats):
            for name, (client, worker, conf, parquet) in workers.items():  # alternate the arms
                client.calls.clear()
                batch = batch_of(conf, parquet)
                t0 = time.perf_counter()
                out = await worker.generate_sequences(batch)
                samples[name]["times"].append(time.perf_counter() - t0)
                samples[name]["turns"].append(len(client.calls) / len(out))
                samples[name]["tokens"].append(float(out.batch["attention_mask"].sum()) / len(out))
        n = args.tasks * args.group
        for name, smp in samples.items():
            med = statistics.median(smp["times"])
            results[name] = {"trajectories": n, "seconds": med, "ms_per_trajectory": 1000 * med / n,
                             "turns_per_trajectory": statistics.mean(smp["turns"]),
                             "tokens_per_trajectory": statistics.mean(smp["tokens"]),
                             "all_seconds": smp["times"]}

    asyncio.run(run_all())
    base_ms = results["verl ToolAgentLoop"]["ms_per_trajectory"]
    for r in results.values():
        r["ratio_vs_verl"] = r["ms_per_trajectory"] / base_ms
    print(f"{'agent loop':28} {'traj':>5} {'turns':>6} {'tokens':>7} {'ms/traj':>9} {'ratio':>6}")
    for name, r in results.items():
        print(f"{name:28} {r['trajectories']:5d} {r['turns_per_trajectory']:6.2f} {r['tokens_per_trajectory']:7.0f} "
              f"{r['ms_per_trajectory']:9.2f} {r['ratio_vs_verl']:6.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
