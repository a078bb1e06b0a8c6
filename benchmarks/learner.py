"""Training throughput of the built-in learner against a plain PyTorch loop, side by side.

Both do the same work on the same batch of multi-turn trajectories: a forward pass of the
same model, the policy-gradient loss on the policy's own tokens, a backward pass, gradient
clipping and an AdamW step. Tokens/s counts the real (non-padding) tokens pushed through
forward and backward.

* ``plain``: the batch pre-collated once (rows padded per micro-batch, in the given order),
  ``model(...).logits`` -> log-softmax gather -> ``-(A * logp * mask).sum() / mask.sum()``.
* ``LocalTrainer``: what a training step runs after the rollouts, starting from the
  Trajectory objects: drop/count untrainable ones, GRPO advantages, TokenViews to sequences,
  length-sorted micro-batches (packed when padding would waste too much), PPO-clip loss with
  entropy and clip metrics, the LM head only on trained positions.

The batch mimics agent episodes: a prompt (mask 0), then assistant turns (mask 1) and tool
results (mask 0), lengths varying between episodes.

    python benchmarks/learner.py [--device cpu|cuda] [--model tiny|small|medium] [--episodes 64]
                                 [--repeats 5] [--threads N] [--out runs/bench_learner.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from traject.trainers.advantage import compute_advantages  # noqa: E402
from traject.trainers.batching import select_trainable, sequences_from_trajectories  # noqa: E402
from traject.trainers.config import AlgorithmConfig, OptimConfig  # noqa: E402
from traject.trainers.update import PolicyUpdater  # noqa: E402
from traject.types import RewardResult, TokenView, Trajectory  # noqa: E402

MODELS = {
    # name: (vocab, hidden, layers, heads, kv heads, intermediate)
    "tiny": (630, 128, 2, 4, 2, 384),
    "small": (8192, 256, 4, 4, 2, 768),
    "medium": (32000, 768, 8, 12, 4, 2048),
}


def make_model(name: str, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    vocab, hidden, layers, heads, kv, inter = MODELS[name]
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                      num_key_value_heads=kv, intermediate_size=inter, max_position_embeddings=4096,
                      tie_word_embeddings=True)
    return Qwen2ForCausalLM(cfg).to(device=device, dtype=dtype)


def make_trajectories(n: int, vocab: int, *, group: int = 8, prompt_len: int = 80, seed: int = 0,
                      scale: float = 1.0) -> list[Trajectory]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ids: list[int] = []
        mask: list[int] = []
        p = int(prompt_len * scale)
        ids += [rng.randrange(3, vocab) for _ in range(p)]
        mask += [0] * p
        for _turn in range(rng.randint(1, 4)):
            a = int(rng.randint(12, 48) * scale)
            ids += [rng.randrange(3, vocab) for _ in range(a)]
            mask += [1] * a
            o = int(rng.randint(6, 40) * scale)
            ids += [rng.randrange(3, vocab) for _ in range(o)]
            mask += [0] * o
        view = TokenView(ids=ids, mask=mask, logprobs=[-1.0 if m else 0.0 for m in mask])
        reward = float(rng.random() < 0.5)
        out.append(Trajectory(task_id=f"task{i // group}", sample_index=i % group, token_views=[view],
                              reward=RewardResult(total=reward, success=reward > 0)))
    return out


def plain_batches(trajs: list[Trajectory], micro_rows: int, pad_id: int, device: torch.device) -> list[tuple]:
    """Pre-collated plain batches: rows in the given order, each micro-batch padded to its own max."""
    adv = compute_advantages(trajs, AlgorithmConfig(advantage="grpo"))
    out = []
    for start in range(0, len(trajs), micro_rows):
        chunk = trajs[start:start + micro_rows]
        width = max(len(t.token_views[0].ids) for t in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        attn = torch.zeros((len(chunk), width), dtype=torch.long)
        mask = torch.zeros((len(chunk), width))
        a = torch.zeros(len(chunk))
        for r, t in enumerate(chunk):
            v = t.token_views[0]
            ids[r, :len(v.ids)] = torch.tensor(v.ids)
            attn[r, :len(v.ids)] = 1
            mask[r, :len(v.ids)] = torch.tensor(v.mask, dtype=torch.float32)
            a[r] = adv[start + r]
        out.append((ids.to(device), attn.to(device), mask.to(device), a.to(device)))
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def plain_step(model: torch.nn.Module, opt: torch.optim.Optimizer, batches: list[tuple]) -> int:
    total_trained = sum(float(m[:, 1:].sum()) for _, _, m, _ in batches)
    tokens = 0
    for ids, attn, mask, adv in batches:
        logits = model(input_ids=ids, attention_mask=attn, use_cache=False).logits[:, :-1].float()
        logp = torch.gather(F.log_softmax(logits, dim=-1), 2, ids[:, 1:, None])[..., 0]
        loss = -(adv[:, None] * logp * mask[:, 1:]).sum() / total_trained
        loss.backward()
        tokens += int(attn.sum())
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return tokens


def trainer_step(updater: PolicyUpdater, trajs: list[Trajectory], algo: AlgorithmConfig) -> int:
    kept, drops = select_trainable(trajs)
    adv = compute_advantages(kept, algo)
    seqs = sequences_from_trajectories(kept, adv, stats=drops)
    m = updater.update(seqs)
    return int(m["update/tokens"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default="small", choices=sorted(MODELS))
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--episodes", type=int, default=64)
    ap.add_argument("--scale", type=float, default=1.0, help="Multiply every segment length (longer episodes).")
    ap.add_argument("--micro-batch-tokens", type=int, default=8192)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default="runs/bench_learner.json")
    args = ap.parse_args()

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    base = make_model(args.model, device, dtype)
    vocab = MODELS[args.model][0]
    trajs = make_trajectories(args.episodes, vocab, scale=args.scale)
    lengths = [len(t.token_views[0].ids) for t in trajs]
    mean_len = statistics.mean(lengths)
    micro_rows = max(1, args.micro_batch_tokens // max(lengths))

    plain_model = copy.deepcopy(base)
    plain_opt = torch.optim.AdamW(plain_model.parameters(), lr=1e-5)
    trainer_model = copy.deepcopy(base)
    trainer_opt = torch.optim.AdamW(trainer_model.parameters(), lr=1e-5)
    algo = AlgorithmConfig(advantage="grpo", skip_zero_advantage=False)
    updater = PolicyUpdater(trainer_model, trainer_opt, algo,
                            OptimConfig(lr=1e-5, micro_batch_tokens=args.micro_batch_tokens), pad_id=0, device=device)

    def run_plain() -> tuple[float, int]:
        t0 = time.perf_counter()
        batches = plain_batches(trajs, micro_rows, 0, device)  # collation is cheap; counted for the plain loop too
        tokens = plain_step(plain_model, plain_opt, batches)
        sync(device)
        return time.perf_counter() - t0, tokens

    def run_trainer() -> tuple[float, int]:
        t0 = time.perf_counter()
        tokens = trainer_step(updater, trajs, algo)
        sync(device)
        return time.perf_counter() - t0, tokens

    # Warm up both (allocator, kernels), then alternate so that drifting machine load hits both alike.
    run_plain()
    run_trainer()
    times: dict[str, list[float]] = {"plain": [], "trainer": []}
    tokens: dict[str, int] = {}
    for _ in range(args.repeats):
        for name, fn in (("plain", run_plain), ("trainer", run_trainer)):
            dt, n = fn()
            times[name].append(dt)
            tokens[name] = n
    med = {k: statistics.median(v) for k, v in times.items()}
    tps = {k: tokens[k] / med[k] for k in med}
    ratio = tps["trainer"] / tps["plain"]
    rows = [
        ("plain PyTorch loop", tokens["plain"], med["plain"], tps["plain"], 1.0),
        ("LocalTrainer update", tokens["trainer"], med["trainer"], tps["trainer"], ratio),
    ]
    hdr = f"{'':24} {'tokens':>8} {'median s':>9} {'tokens/s':>10} {'ratio':>6}"
    print(f"model {args.model} ({sum(p.numel() for p in base.parameters()) / 1e6:.2f}M params), device {device}, "
          f"{args.episodes} episodes, mean length {mean_len:.0f} tokens, "
          f"threads {torch.get_num_threads()}, {args.repeats} repeats")
    print(hdr)
    print("-" * len(hdr))
    for name, n, s, t, r in rows:
        print(f"{name:24} {n:8d} {s:9.3f} {t:10.0f} {r:6.2f}")
    result = {
        "model": args.model, "params": sum(p.numel() for p in base.parameters()), "device": str(device),
        "dtype": args.dtype, "episodes": args.episodes, "mean_len": mean_len, "threads": torch.get_num_threads(),
        "repeats": args.repeats, "micro_batch_tokens": args.micro_batch_tokens,
        "plain": {"tokens": tokens["plain"], "median_s": med["plain"], "tokens_per_s": tps["plain"],
                  "times": times["plain"]},
        "trainer": {"tokens": tokens["trainer"], "median_s": med["trainer"], "tokens_per_s": tps["trainer"],
                    "times": times["trainer"]},
        "ratio": ratio, "target": 0.9, "machine": platform.platform(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"ratio LocalTrainer / plain = {ratio:.2f} (target >= 0.9); wrote {out}")


if __name__ == "__main__":
    main()
