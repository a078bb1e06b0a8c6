"""A causal LM's logprobs of a TensorBatch's tokens, computing the LM head only where needed.

In multi-turn agent trajectories most tokens are prompt, tool results and user turns: only
the policy's own tokens are trained on. The LM head (hidden -> vocabulary logits, the most
expensive matmul of a small model and the biggest activation of any model) is therefore run
only on the positions that predict a trained token, when the model has the standard
``base_model`` + ``get_output_embeddings()`` layout; otherwise the full forward is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from traject.trainers.algorithms.losses import entropy_from_logits, token_logprobs
from traject.trainers.batching import TensorBatch


@dataclass
class TokenScores:
    """Per-token results, ``[B, L]`` aligned with ``input_ids`` (position t scores token t);
    0 outside the loss mask."""

    logprobs: torch.Tensor
    entropy: torch.Tensor | None = None


def _head_split(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module] | None:
    cfg = getattr(model, "config", None)
    if cfg is None or getattr(cfg, "final_logit_softcapping", None) or getattr(cfg, "logit_scale", None):
        return None
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    base = getattr(model, "base_model", None)
    if head is None or base is None or base is model:
        return None
    return base, head


def score_tokens(model: torch.nn.Module, batch: TensorBatch, *, temperature: float = 1.0,
                 with_entropy: bool = False, entropy_grad: bool = False,
                 selective_head: bool = True) -> TokenScores:
    """Logprobs (and optionally entropies, differentiable with ``entropy_grad``) of the trained
    tokens of ``batch`` under ``model``."""
    ids = batch.input_ids
    target_mask = batch.loss_mask[:, 1:] > 0
    labels = ids[:, 1:]
    kwargs = {"input_ids": ids, "attention_mask": batch.attention_mask, "position_ids": batch.position_ids,
              "use_cache": False}
    split = _head_split(model) if selective_head else None
    b, length = ids.shape
    logprobs = torch.zeros((b, length), dtype=torch.float32, device=ids.device)
    entropy = torch.zeros((b, length), dtype=torch.float32, device=ids.device) if with_entropy else None
    if split is not None:
        base, head = split
        hidden = base(**kwargs).last_hidden_state[:, :-1]
        sel = hidden[target_mask]                       # [n, H]: positions predicting a trained token
        logits = head(sel).float()
        if temperature != 1.0:
            logits = logits / temperature
        lp = token_logprobs(logits[None], labels[target_mask][None])[0]
        logprobs = _scatter(logprobs, target_mask, lp)
        if entropy is not None:
            with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
                entropy = _scatter(entropy, target_mask, entropy_from_logits(logits))
        return TokenScores(logprobs, entropy)
    logits = model(**kwargs).logits[:, :-1].float()
    if temperature != 1.0:
        logits = logits / temperature
    lp = token_logprobs(logits, labels) * target_mask
    logprobs = torch.cat([torch.zeros_like(lp[:, :1]), lp], dim=1)
    if entropy is not None:
        with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
            ent = entropy_from_logits(logits) * target_mask
            entropy = torch.cat([torch.zeros_like(ent[:, :1]), ent], dim=1)
    return TokenScores(logprobs, entropy)


def _scatter(base: torch.Tensor, target_mask: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``base`` with ``values`` written at the positions of token t+1 for each true ``target_mask[t]``."""
    full_mask = torch.cat([torch.zeros_like(target_mask[:, :1]), target_mask], dim=1)
    return base.masked_scatter(full_mask, values.to(base.dtype))
