"""GPU checks of the veRL backend and the vLLM policy, for a machine with a CUDA GPU and
``pip install 'traject[verl,vllm]'`` (verl 0.9.1, vLLM 0.24.0). Run through
``benchmarks/verl_gpu_check.sh``; each step prints a table row and all go to a JSON file.

    python benchmarks/verl_gpu_check.py vllm  --workdir DIR   # VLLMPolicy on the lookup env
    python benchmarks/verl_gpu_check.py train --workdir DIR   # 2 GRPO steps of veRL on lookup

Nothing is downloaded: the model is a tiny random Qwen2 built locally, so rewards are
meaningless; what is checked is that tokens, masks, logprobs and rewards flow end to end.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml


def tiny_model(workdir: Path) -> Path:
    from traject.agents.hf import build_tiny_model

    # head_dim 64: a size every vLLM attention backend supports (rebuilt only if the spec changed)
    return build_tiny_model(workdir / "tiny-qwen", hidden_size=256, intermediate_size=512, num_layers=2,
                            num_heads=4, num_kv_heads=2)


def check_vllm(workdir: Path) -> dict:
    import anyio

    from traject.agents.rollouts import Rollouts
    from traject.agents.vllm_policy import VLLMPolicy
    from traject.environments.registry import load_tasks

    model = tiny_model(workdir)
    t0 = time.perf_counter()
    policy = VLLMPolicy(str(model), max_tokens=64, max_model_len=2048, gpu_memory_utilization=0.3,
                        engine_kwargs={"enforce_eager": True})
    startup = time.perf_counter() - t0
    tasks = load_tasks("lookup", split="test", n=8, seed=0)
    t0 = time.perf_counter()
    trajs = anyio.run(Rollouts(policy, "lookup", group_size=2, concurrency=16).run, tasks)
    elapsed = time.perf_counter() - t0
    problems = []
    for t in trajs:
        for v in t.token_views:
            if not (len(v.ids) == len(v.mask) == len(v.logprobs)):
                problems.append(f"{t.id}: lengths differ")
            if any(m == 1 and lp == 0.0 for m, lp in zip(v.mask, v.logprobs, strict=True)):
                problems.append(f"{t.id}: a sampled token without its logprob")
        gens = [m.generation for m in t.messages if m.role == "assistant" and m.generation]
        for a, b in zip(gens, gens[1:], strict=False):
            if b.prompt_ids[: len(a.prompt_ids) + len(a.completion_ids)] != a.prompt_ids + a.completion_ids:
                problems.append(f"{t.id}: a later prompt does not extend the earlier one")
    policy.shutdown()
    statuses = sorted({t.status.value for t in trajs})
    return {"check": "vllm_policy", "ok": not problems and all(t.token_views for t in trajs if t.status.value != "infra_error"),
            "trajectories": len(trajs), "statuses": statuses, "engine_start_s": round(startup, 1),
            "rollout_s": round(elapsed, 2), "problems": problems[:10]}


def check_train(workdir: Path, timeout: int) -> dict:
    model = tiny_model(workdir)
    run = workdir / "verl-run"
    cfg = {  # traject's one TrainConfig, on the veRL engine
        "backend": "verl",
        "model": {"path": str(model), "max_seq_len": 768},
        "env": {"name": "lookup", "tasks": {"split": "train", "n": 8, "seed": 0}},
        "eval": {"tasks": {}},
        "rollout": {"group_size": 2, "tasks_per_step": 4},
        "optim": {"lr": 1e-5},
        "trainer": {"steps": 2, "out_dir": str(run)},
        "verl": {"max_prompt_length": 512, "gpus_per_node": 1, "gpu_memory_utilization": 0.3, "agent_workers": 2,
                 "overrides": ["trainer.val_before_train=false", "actor_rollout_ref.rollout.enforce_eager=true",
                               "actor_rollout_ref.rollout.max_model_len=1024"]},
    }
    path = workdir / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    log = workdir / "verl-train.log"
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        try:
            rc = subprocess.call([sys.executable, "-m", "traject.cli", "train", "--backend", "verl", str(path)],
                                 stdout=fh, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = 124
    elapsed = time.perf_counter() - t0
    trajs = []
    for f in (run / "trajectories").glob("*.jsonl"):
        trajs += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    tail = log.read_text()[-3000:]
    return {"check": "verl_train", "ok": rc == 0 and len(trajs) >= 8, "exit": rc, "seconds": round(elapsed, 1),
            "trajectories_stored": len(trajs),
            "statuses": sorted({t["status"] for t in trajs}), "log": str(log), "log_tail": tail if rc else ""}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("step", choices=["vllm", "train"])
    ap.add_argument("--workdir", default="/tmp/traject-gpu-check")
    ap.add_argument("--timeout", type=int, default=540)
    args = ap.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    result = check_vllm(workdir) if args.step == "vllm" else check_train(workdir, args.timeout)
    out = workdir / f"{args.step}.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "log_tail"}))
    if result.get("log_tail"):
        print(result["log_tail"])
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
