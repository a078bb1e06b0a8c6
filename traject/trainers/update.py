"""One policy update (PPO-clip / GRPO) and one SFT update over a list of TrainSequences.

Both split the sequences into mini-batches (one optimizer step each) and each mini-batch into
micro-batches under a token budget (gradient accumulation). Losses are normalised by the
mini-batch's token or sequence count, so accumulation gives exactly the gradient of the whole
mini-batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from traject.trainers.algorithms.losses import ppo_clip_loss, sft_loss, truncated_is_weights
from traject.trainers.batching import TensorBatch, TrainSequence, collate, plan_micro_batches, should_pack
from traject.trainers.config import AlgorithmConfig, OptimConfig
from traject.trainers.forward import score_tokens

__all__ = ["MicroBatcher", "PolicyUpdater", "UpdateStats", "sft_step"]


@dataclass
class MicroBatcher:
    """Turns sequences into collated micro-batches on ``device``."""

    pad_id: int
    device: torch.device
    micro_batch_tokens: int = 16384
    micro_batch_seqs: int | None = None
    packing: str = "auto"   # auto | on | off

    def __call__(self, seqs: Sequence[TrainSequence]) -> list[TensorBatch]:
        lengths = [len(s) for s in seqs]
        plan = plan_micro_batches(lengths, max_tokens=self.micro_batch_tokens, max_seqs=self.micro_batch_seqs)
        out = []
        if self.packing == "on" or (self.packing == "auto" and should_pack(
                lengths, max_tokens=self.micro_batch_tokens, max_seqs=self.micro_batch_seqs)):
            # Rows as long as the longest sequence (see should_pack), filled with several short ones.
            width = max(lengths)
            for idx in _chunks_by_tokens(lengths, max(self.micro_batch_tokens, width)):
                out.append(collate([seqs[i] for i in idx], pad_id=self.pad_id, pack=True, row_len=width))
        else:
            for idx in plan:
                out.append(collate([seqs[i] for i in idx], pad_id=self.pad_id))
        return [b.to(self.device) for b in out]


def _chunks_by_tokens(lengths: Sequence[int], budget: int) -> list[list[int]]:
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    chunks: list[list[int]] = []
    cur: list[int] = []
    used = 0
    for i in order:
        if cur and used + lengths[i] > budget:
            chunks.append(cur)
            cur, used = [], 0
        cur.append(i)
        used += lengths[i]
    if cur:
        chunks.append(cur)
    return chunks


@dataclass
class UpdateStats:
    """Sums over an update, turned into means by :meth:`metrics`."""

    values: dict[str, float] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    grad_norms: list[float] = field(default_factory=list)
    tokens: int = 0            # real (non-padding) tokens through forward+backward
    trained_tokens: int = 0
    padded_tokens: int = 0
    seconds: float = 0.0
    optimizer_steps: int = 0

    def add(self, name: str, value: float, weight: float) -> None:
        self.values[name] = self.values.get(name, 0.0) + value * weight
        self.weights[name] = self.weights.get(name, 0.0) + weight

    def metrics(self, prefix: str = "") -> dict[str, float]:
        out = {f"{prefix}{k}": v / self.weights[k] for k, v in self.values.items() if self.weights[k] > 0}
        if self.grad_norms:
            out[f"{prefix}grad_norm"] = sum(self.grad_norms) / len(self.grad_norms)
            out[f"{prefix}grad_norm_max"] = max(self.grad_norms)
        out[f"{prefix}tokens"] = self.tokens
        out[f"{prefix}trained_tokens"] = self.trained_tokens
        out[f"{prefix}pad_fraction"] = 1.0 - self.tokens / self.padded_tokens if self.padded_tokens else 0.0
        out[f"{prefix}tokens_per_s"] = self.tokens / self.seconds if self.seconds > 0 else 0.0
        out[f"{prefix}optimizer_steps"] = self.optimizer_steps
        return out


def _split(items: list[int], parts: int) -> list[list[int]]:
    parts = max(1, min(parts, len(items)))
    size = -(-len(items) // parts)
    return [items[i:i + size] for i in range(0, len(items), size)]


def _clip_and_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, grad_clip: float | None) -> float:
    params = [p for p in model.parameters() if p.grad is not None]
    if grad_clip is not None:
        norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
    else:
        norm = torch.linalg.vector_norm(torch.stack([p.grad.detach().norm() for p in params])) if params else torch.zeros(())
    norm_f = float(norm)
    if torch.isfinite(norm).item():
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return norm_f


class PolicyUpdater:
    """PPO-clip (GRPO etc.) updates of ``model`` on sequences that carry advantages."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, algo: AlgorithmConfig,
                 optim: OptimConfig, *, pad_id: int, device: torch.device | str = "cpu",
                 ref_model: torch.nn.Module | None = None, temperature: float = 1.0,
                 shuffle_seed: int = 0) -> None:
        self.model = model
        self.optimizer = optimizer
        self.algo = algo
        self.optim = optim
        self.ref_model = ref_model
        self.temperature = temperature
        self.device = torch.device(device)
        self.batcher = MicroBatcher(pad_id, self.device, optim.micro_batch_tokens, optim.micro_batch_seqs,
                                    optim.packing)
        self.shuffle_seed = shuffle_seed

    @property
    def _reuses_current_logprobs(self) -> bool:
        return self.algo.old_logprobs == "auto" and self.algo.ppo_epochs == 1 and self.algo.mini_batches == 1

    def update(self, seqs: Sequence[TrainSequence], *, step: int = 0) -> dict[str, float]:
        stats = UpdateStats()
        seqs = list(seqs)
        if self.algo.skip_zero_advantage:
            seqs = [s for s in seqs if any(a != 0.0 for a, m in zip(s.advantages, s.mask, strict=True) if m)]
        if not seqs:
            return {"update/skipped": 1.0, "update/seqs": 0.0}
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(self.shuffle_seed * 1_000_003 + step)
        order = torch.randperm(len(seqs), generator=gen).tolist() if self.algo.mini_batches > 1 else list(range(len(seqs)))
        minis = []
        for idx in _split(order, self.algo.mini_batches):
            chunk = [seqs[i] for i in idx]
            micro = self.batcher(chunk)
            n_tok = float(sum(b.num_tokens for b in micro))
            n_seq = float(sum(1 for s in chunk if any(s.mask[1:])))
            minis.append((micro, n_tok, n_seq))
        self.model.train()
        old: dict[int, torch.Tensor] = {}
        ref: dict[int, torch.Tensor] = {}
        need_ref = self.ref_model is not None and (self.algo.kl_coef > 0 or self.algo.track_ref_kl)
        if not self._reuses_current_logprobs and self.algo.old_logprobs != "sampler" or need_ref:
            with torch.no_grad():
                for micro, _, _ in minis:
                    for b in micro:
                        if not self._reuses_current_logprobs and self.algo.old_logprobs != "sampler":
                            old[id(b)] = score_tokens(self.model, b, temperature=self.temperature).logprobs
                        if need_ref:
                            assert self.ref_model is not None
                            ref[id(b)] = score_tokens(self.ref_model, b, temperature=self.temperature).logprobs
        for _ in range(self.algo.ppo_epochs):
            for micro, n_tok, n_seq in minis:
                loss = sum(self._micro_step(b, n_tok, n_seq, old.get(id(b)), ref.get(id(b)), stats) for b in micro)
                stats.add("pg_loss", loss, 1.0)
                stats.grad_norms.append(_clip_and_step(self.model, self.optimizer, self.optim.grad_clip))
                stats.optimizer_steps += 1
        stats.seconds = time.perf_counter() - t0
        out = stats.metrics("update/")
        out["update/seqs"] = float(len(seqs))
        return out

    def _micro_step(self, b: TensorBatch, n_tok: float, n_seq: float, old: torch.Tensor | None,
                    ref: torch.Tensor | None, stats: UpdateStats) -> float:
        scores = score_tokens(self.model, b, temperature=self.temperature, with_entropy=True,
                              entropy_grad=self.algo.entropy_coef != 0.0)
        lp = scores.logprobs
        if old is None:
            old = b.sampler_logprobs if self.algo.old_logprobs == "sampler" else lp.detach()
        is_w = None
        if self.algo.tis_cap is not None:
            is_w = truncated_is_weights(old, b.sampler_logprobs, b.loss_mask, cap=self.algo.tis_cap)
        out = ppo_clip_loss(lp, old, b.advantages, b.loss_mask, clip_low=self.algo.clip_low,
                            clip_high=self.algo.clip_high, dual_clip=self.algo.dual_clip, agg=self.algo.loss_agg,
                            is_weights=is_w, ref_logprobs=ref, kl_coef=self.algo.kl_coef, kl_kind=self.algo.kl_kind,
                            entropy=scores.entropy, entropy_coef=self.algo.entropy_coef, num_tokens=n_tok,
                            num_seqs=n_seq, seq_ids=b.seq_ids, norm_length=self.algo.loss_norm_length)
        out.loss.backward()
        w = float(b.num_tokens)
        stats.add("clip_frac", float(out.clip_frac), w)
        stats.add("ppo_kl", float(out.approx_kl), w)
        if out.kl is not None:
            stats.add("kl", float(out.kl), w)
        if out.entropy is not None:
            stats.add("entropy", float(out.entropy), w)
        with torch.no_grad():
            m = b.loss_mask
            stats.add("sampler_logprob_diff", float(((lp.detach() - b.sampler_logprobs).abs() * m).sum() / m.sum().clamp(min=1)), w)
            if is_w is not None:
                stats.add("tis_weight", float((is_w * m).sum() / m.sum().clamp(min=1)), w)
        stats.tokens += b.real_tokens
        stats.trained_tokens += b.num_tokens
        stats.padded_tokens += b.input_ids.numel()
        return float(out.pg_loss)


def sft_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, micro: Sequence[TensorBatch], *,
             grad_clip: float | None = 1.0, on_loss: Callable[[float], None] | None = None) -> UpdateStats:
    """One optimizer step of next-token NLL on the masked (assistant) tokens of ``micro``."""
    stats = UpdateStats()
    t0 = time.perf_counter()
    model.train()
    n_tok = float(sum(b.num_tokens for b in micro))
    total = 0.0
    for b in micro:
        lp = score_tokens(model, b).logprobs
        loss = sft_loss(lp, b.loss_mask, num_tokens=n_tok)
        loss.backward()
        total += float(loss.detach())
        stats.tokens += b.real_tokens
        stats.trained_tokens += b.num_tokens
        stats.padded_tokens += b.input_ids.numel()
    stats.add("loss", total, 1.0)
    stats.grad_norms.append(_clip_and_step(model, optimizer, grad_clip))
    stats.optimizer_steps += 1
    stats.seconds = time.perf_counter() - t0
    if on_loss is not None:
        on_loss(stats.metrics()["loss"])
    return stats
