"""Batched sampling with a KV cache, recording each sampled token's logprob.

One padded forward pass per step for the whole batch (prompts left-padded, positions from the
attention mask), each row drawn with its own ``torch.Generator`` so a row's tokens depend on
its seed, not on the other rows. Synchronous: the policy runs it in a worker thread.

The recorded logprob is the model's raw ``log_softmax`` at temperature 1 of the sampled token,
whatever the sampling temperature, top-p or top-k: exactly what a forward pass of the same
weights on the same sequence gives, so the learner can use it as PPO's old logprob. (The
sampling distribution itself is the temperature-scaled, truncated one; with temperature 1 and
no truncation the two coincide.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 is greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 is off), got {self.top_k}")


@dataclass(frozen=True)
class SampleRequest:
    prompt_ids: list[int]
    max_new_tokens: int
    seed: int
    # This request's own sampling (a server's per-request temperature); None: the batch's.
    params: SamplingParams | None = None


@dataclass(frozen=True)
class SampleResult:
    completion_ids: list[int]
    logprobs: list[float]
    finish_reason: str  # "stop": a stop token was sampled (and is included); "length": the budget ran out
    # The weights' version when this batch ran (set by HFPolicy).
    policy_version: int | None = None


def _truncate(scores: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Scores with everything outside top-k / the top-p nucleus set to -inf."""
    if params.top_k and params.top_k < scores.shape[-1]:
        kth = torch.topk(scores, params.top_k, dim=-1).values[..., -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_scores, order = torch.sort(scores, dim=-1, descending=True)
        cumulative = torch.softmax(sorted_scores, dim=-1).cumsum(dim=-1)
        # Drop a token when the tokens before it already reach top_p (the first always stays).
        drop_sorted = (cumulative - torch.softmax(sorted_scores, dim=-1)) >= params.top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        scores = scores.masked_fill(drop, float("-inf"))
    return scores


def _choose(scores: torch.Tensor, params: SamplingParams, generator: torch.Generator) -> int:
    """One row's token under its own sampling parameters (``scores``: shape (1, vocab))."""
    if params.temperature == 0:
        return int(scores.argmax(dim=-1).item())
    probs = torch.softmax(_truncate(scores / params.temperature, params), dim=-1).cpu()
    return int(torch.multinomial(probs[0], 1, generator=generator).item())


@torch.inference_mode()
def sample_batch(model: Any, requests: list[SampleRequest], params: SamplingParams, *, stop_ids: set[int],
                 pad_id: int, vocab_limit: int | None = None) -> list[SampleResult]:
    """Sample a completion for every request, in one batch."""
    if not requests:
        return []
    device = next(model.parameters()).device
    n = len(requests)
    longest = max(len(r.prompt_ids) for r in requests)
    input_ids = torch.full((n, longest), pad_id, dtype=torch.long)
    attention = torch.zeros((n, longest), dtype=torch.long)
    for i, r in enumerate(requests):
        input_ids[i, longest - len(r.prompt_ids):] = torch.tensor(r.prompt_ids, dtype=torch.long)
        attention[i, longest - len(r.prompt_ids):] = 1
    input_ids, attention = input_ids.to(device), attention.to(device)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    generators = [torch.Generator(device="cpu").manual_seed(r.seed % (2**63)) for r in requests]
    completions: list[list[int]] = [[] for _ in requests]
    logprobs: list[list[float]] = [[] for _ in requests]
    finish: list[str | None] = [None] * n
    rows = [r.params or params for r in requests]
    mixed = any(p != params for p in rows)
    for i, r in enumerate(requests):
        if r.max_new_tokens <= 0:
            finish[i] = "length"

    out = model(input_ids=input_ids, attention_mask=attention, position_ids=positions, use_cache=True)
    past = out.past_key_values
    next_pos = positions[:, -1:] + 1
    while any(f is None for f in finish):
        logits = out.logits[:, -1, :].float()
        logp = torch.log_softmax(logits, dim=-1)
        scores = logits
        if vocab_limit is not None and vocab_limit < scores.shape[-1]:
            scores = scores.clone()
            scores[:, vocab_limit:] = float("-inf")
        if mixed:
            chosen = torch.empty(n, dtype=torch.long)
            for i in range(n):
                chosen[i] = (_choose(scores[i:i + 1], rows[i], generators[i])
                             if finish[i] is None else pad_id)
        elif params.temperature == 0:
            chosen = scores.argmax(dim=-1).cpu()
        else:
            probs = torch.softmax(_truncate(scores / params.temperature, params), dim=-1).cpu()
            chosen = torch.empty(n, dtype=torch.long)
            for i in range(n):
                chosen[i] = torch.multinomial(probs[i], 1, generator=generators[i]) if finish[i] is None else pad_id
        chosen_logp = logp.gather(-1, chosen.to(logp.device)[:, None])[:, 0].cpu().tolist()
        feed = chosen.clone()
        for i in range(n):
            if finish[i] is not None:
                feed[i] = pad_id
                continue
            tok = int(chosen[i])
            completions[i].append(tok)
            logprobs[i].append(chosen_logp[i])
            if tok in stop_ids:
                finish[i] = "stop"
            elif len(completions[i]) >= requests[i].max_new_tokens:
                finish[i] = "length"
        if all(f is not None for f in finish):
            break
        attention = torch.cat([attention, torch.ones((n, 1), dtype=attention.dtype, device=device)], dim=1)
        out = model(input_ids=feed[:, None].to(device), attention_mask=attention, position_ids=next_pos,
                    past_key_values=past, use_cache=True)
        past = out.past_key_values
        next_pos = next_pos + 1
    return [SampleResult(completion_ids=c, logprobs=lp, finish_reason=f or "length")
            for c, lp, f in zip(completions, logprobs, finish, strict=True)]
