"""Policy losses, as pure torch functions of per-token tensors.

Every tensor here is ``[B, L]``, aligned token by token: ``logprobs[b, t]`` is the log
probability of token t of row b under the policy being trained, ``mask[b, t]`` is 1 where the
loss falls (tokens the policy sampled) and 0 elsewhere (prompt, tool results, user turns,
padding). A token whose mask is 0 contributes exactly nothing, not even through its
gradient: losses are multiplied by the mask, never averaged over it.

Token aggregation, and why it takes ``num_tokens``/``num_seqs``: with gradient accumulation a
mini-batch is split into micro-batches, and the loss of each must be normalised by the
*mini-batch's* count of tokens (or sequences), not its own, so that the summed gradients
equal the gradient of the whole mini-batch. Leave them None for a single batch.

>>> import torch
>>> loss = torch.tensor([[1.0, 2.0, 0.0], [4.0, 0.0, 0.0]])
>>> mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
>>> float(aggregate(loss, mask, "token-mean"))  # (1 + 2 + 4) / 3
2.3333332538604736
>>> float(aggregate(loss, mask, "seq-mean-token-mean"))  # (1.5 + 4) / 2
2.75
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

AggMode = Literal["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"]
KLKind = Literal["k1", "k2", "k3"]

__all__ = [
    "AggMode",
    "KLKind",
    "PolicyLossOutput",
    "aggregate",
    "entropy_from_logits",
    "kl_penalty",
    "ppo_clip_loss",
    "sft_loss",
    "token_logprobs",
    "truncated_is_weights",
]


def _seq_reduce(values: torch.Tensor, seq_ids: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum ``values`` per sequence. Rows are sequences unless ``seq_ids`` (packed rows: the id
    of the sequence each token belongs to, -1 on padding) says otherwise. Returns (sums, ids
    of the sequences that exist)."""
    if seq_ids is None:
        return values.sum(-1), torch.arange(values.shape[0], device=values.device)
    flat = seq_ids.reshape(-1)
    keep = flat >= 0
    ids = flat[keep]
    n = int(ids.max()) + 1 if ids.numel() else 0
    sums = torch.zeros(n, dtype=values.dtype, device=values.device).index_add(0, ids, values.reshape(-1)[keep])
    return sums, torch.unique(ids)


def aggregate(loss: torch.Tensor, mask: torch.Tensor, mode: AggMode = "token-mean", *,
              num_tokens: float | None = None, num_seqs: float | None = None,
              seq_ids: torch.Tensor | None = None, norm_length: float | None = None) -> torch.Tensor:
    """Reduce a per-token loss ``[B, L]`` to a scalar.

    * ``token-mean``: sum over all trained tokens / number of trained tokens (each token
      weighs the same; DAPO's choice).
    * ``seq-mean-token-sum``: per sequence, the sum over its tokens; then the mean over
      sequences (long answers weigh more).
    * ``seq-mean-token-mean``: per sequence, the mean over its tokens; then the mean over
      sequences (the original GRPO's choice).
    * ``seq-mean-token-sum-norm``: per sequence, the sum over its tokens divided by a
      constant ``norm_length`` (Dr. GRPO); then the mean over sequences.

    Sequences without any trained token are not counted. ``num_tokens``/``num_seqs`` override
    the denominators (see the module doc); ``seq_ids`` gives sequence membership in packed rows.
    """
    mask = mask.to(loss.dtype)
    masked = loss * mask
    if mode == "token-mean":
        if num_tokens is not None:
            return masked.sum() / max(float(num_tokens), 1.0)
        return masked.sum() / mask.sum().clamp(min=1)
    sums, _ = _seq_reduce(masked, seq_ids)
    counts, _ = _seq_reduce(mask, seq_ids)
    present = counts > 0
    if mode == "seq-mean-token-sum":
        per_seq = sums
    elif mode == "seq-mean-token-mean":
        per_seq = sums / counts.clamp(min=1)
    elif mode == "seq-mean-token-sum-norm":
        if norm_length is None or norm_length <= 0:
            raise ValueError("seq-mean-token-sum-norm needs a positive norm_length (e.g. the max response length)")
        per_seq = sums / norm_length
    else:
        raise ValueError(f"unknown aggregation mode {mode!r}; use one of token-mean, seq-mean-token-sum, "
                         "seq-mean-token-mean, seq-mean-token-sum-norm")
    denom_seqs = float(num_seqs) if num_seqs is not None else float(present.sum())
    return (per_seq * present.to(per_seq.dtype)).sum() / max(denom_seqs, 1.0)


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log p(labels) under ``logits`` (``[B, L, V]`` and ``[B, L]``), computed in float32.

    Uses cross-entropy's fused log-softmax + gather, which never materialises the ``[B, L, V]``
    log-probabilities a second time.
    """
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    b, l, v = logits.shape
    return -F.cross_entropy(logits.reshape(b * l, v), labels.reshape(b * l), reduction="none").reshape(b, l)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Per-token entropy of the categorical distributions in ``logits [..., V]``."""
    logits = logits.float()
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, kind: KLKind = "k3",
               clamp: float | None = 10.0) -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from the sampled tokens' logprobs.

    * ``k1``: ``log p - log q`` (unbiased, high variance, may be negative);
    * ``k2``: ``0.5 (log p - log q)^2``;
    * ``k3``: ``exp(log q - log p) - (log q - log p) - 1`` (unbiased, non-negative, low
      variance; Schulman's estimator, veRL's ``low_var_kl``), clamped to ``[-clamp, clamp]``.
    """
    diff = logprobs - ref_logprobs
    if kind == "k1":
        return diff
    if kind == "k2":
        return 0.5 * diff.square()
    if kind == "k3":
        log_ratio = -diff
        if clamp is not None:
            log_ratio = log_ratio.clamp(-20.0, 20.0)
        kl = log_ratio.exp() - log_ratio - 1
        return kl.clamp(-clamp, clamp) if clamp is not None else kl
    raise ValueError(f"unknown KL estimator {kind!r}; use k1, k2 or k3")


def truncated_is_weights(proximal_logprobs: torch.Tensor, sampler_logprobs: torch.Tensor,
                         mask: torch.Tensor, cap: float = 2.0) -> torch.Tensor:
    """Truncated importance weights ``min(pi_old / pi_sampler, cap)`` per token, detached.

    For rollouts sampled by another engine (vLLM, a stale copy of the weights): the trainer's
    own logprobs of the sampled tokens (``proximal_logprobs``) and the sampler's can differ,
    and the policy gradient must be corrected for it. Tokens outside the mask get weight 0.
    """
    log_w = (proximal_logprobs - sampler_logprobs).detach().clamp(max=20.0)
    return torch.clamp(log_w.exp(), max=cap) * mask.to(log_w.dtype)


@dataclass
class PolicyLossOutput:
    loss: torch.Tensor                 # the scalar to backpropagate
    pg_loss: torch.Tensor              # detached parts, for metrics
    clip_frac: torch.Tensor            # share of trained tokens whose ratio was clipped
    approx_kl: torch.Tensor            # mean of (log pi_old - log pi) over trained tokens (k1)
    kl: torch.Tensor | None = None     # mean KL to the reference, when a reference is given
    entropy: torch.Tensor | None = None


def ppo_clip_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                  mask: torch.Tensor, *, clip_low: float = 0.2, clip_high: float = 0.2,
                  dual_clip: float | None = None, agg: AggMode = "token-mean",
                  is_weights: torch.Tensor | None = None, ref_logprobs: torch.Tensor | None = None,
                  kl_coef: float = 0.0, kl_kind: KLKind = "k3", entropy: torch.Tensor | None = None,
                  entropy_coef: float = 0.0, num_tokens: float | None = None, num_seqs: float | None = None,
                  seq_ids: torch.Tensor | None = None, norm_length: float | None = None) -> PolicyLossOutput:
    """PPO's clipped surrogate, per token, then aggregated.

    ``ratio = exp(logprobs - old_logprobs)``; the per-token loss is
    ``max(-A * ratio, -A * clip(ratio, 1 - clip_low, 1 + clip_high))`` (``clip_high >
    clip_low`` is DAPO's clip-higher). ``dual_clip`` (> 1) caps the loss of negative-advantage
    tokens at ``-A * dual_clip``. ``is_weights`` (see :func:`truncated_is_weights`) multiply the
    per-token loss. With ``ref_logprobs`` and ``kl_coef``, ``kl_coef * KL`` is added per token;
    with ``entropy`` and ``entropy_coef``, ``- entropy_coef * entropy`` is.
    """
    mask_f = mask.to(logprobs.dtype)
    log_ratio = (logprobs - old_logprobs).clamp(-20.0, 20.0)
    ratio = log_ratio.exp()
    pg1 = -advantages * ratio
    pg2 = -advantages * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    per_token = torch.maximum(pg1, pg2)
    clipped = (pg2 > pg1).to(logprobs.dtype)
    if dual_clip is not None:
        if dual_clip <= 1.0:
            raise ValueError(f"dual_clip must be > 1, got {dual_clip}")
        pg3 = -advantages * dual_clip
        per_token = torch.where(advantages < 0, torch.minimum(per_token, pg3), per_token)
    if is_weights is not None:
        per_token = per_token * is_weights
    kw = {"num_tokens": num_tokens, "num_seqs": num_seqs, "seq_ids": seq_ids, "norm_length": norm_length}
    pg_loss = aggregate(per_token, mask_f, agg, **kw)
    loss = pg_loss
    kl_mean = None
    if ref_logprobs is not None:
        kl = kl_penalty(logprobs, ref_logprobs, kl_kind)
        if kl_coef:
            loss = loss + kl_coef * aggregate(kl, mask_f, agg, **kw)
        kl_mean = _masked_mean(kl.detach(), mask_f)
    ent_mean = None
    if entropy is not None:
        if entropy_coef:
            loss = loss - entropy_coef * aggregate(entropy, mask_f, agg, **kw)
        ent_mean = _masked_mean(entropy.detach(), mask_f)
    with torch.no_grad():
        clip_frac = _masked_mean(clipped, mask_f)
        approx_kl = _masked_mean(-log_ratio.detach(), mask_f)
    return PolicyLossOutput(loss=loss, pg_loss=pg_loss.detach(), clip_frac=clip_frac, approx_kl=approx_kl,
                            kl=kl_mean, entropy=ent_mean)


def sft_loss(logprobs: torch.Tensor, mask: torch.Tensor, agg: AggMode = "token-mean", *,
             num_tokens: float | None = None, num_seqs: float | None = None) -> torch.Tensor:
    """Negative log-likelihood on the masked tokens (the assistant's, in SFT)."""
    return aggregate(-logprobs, mask, agg, num_tokens=num_tokens, num_seqs=num_seqs)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)
