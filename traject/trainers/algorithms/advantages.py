"""Advantage estimators, as pure torch functions of rewards and group ids.

Each function takes one reward per sample (``rewards``, shape ``[N]``) and the id of the
group it belongs to (``groups``, shape ``[N]``, any integers: the G samples of one task share
an id) and returns one advantage per sample. The built-in learner and the veRL backend both
call these; they never look at a Trajectory.

A group of one sample has nothing to compare against: its advantage is 0 (veRL instead
passes the raw reward through; a lone sample's reward is no evidence about the policy).

>>> import torch
>>> r = torch.tensor([1.0, 0.0, 1.0, 1.0])
>>> g = torch.tensor([0, 0, 1, 1])
>>> grpo_advantages(r, g, norm_by_std=False).tolist()
[0.5, -0.5, 0.0, 0.0]
"""

from __future__ import annotations

import torch

__all__ = [
    "group_stats",
    "grpo_advantages",
    "reinforce_pp_baseline_advantages",
    "rloo_advantages",
    "turn_level_advantages",
]


def _dense_groups(groups: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Map arbitrary group ids to 0..K-1."""
    uniq, inverse = torch.unique(groups, return_inverse=True)
    return inverse, int(uniq.numel())


def group_stats(values: torch.Tensor, groups: torch.Tensor, weights: torch.Tensor | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample (count, mean, unbiased std) of its group, counting only samples whose
    ``weights`` is non-zero (all of them when ``weights`` is None).

    ``values`` and ``groups`` may have any shape; statistics are taken over the group ids,
    position by position along any trailing dimension of ``values`` when ``groups`` has fewer
    dimensions (``values [N, T]``, ``groups [N]``: stats per group and column).
    """
    values = values.to(torch.float64)
    if weights is None:
        weights = torch.ones_like(values)
    weights = weights.to(torch.float64)
    dense, k = _dense_groups(groups)
    shape = (k, *values.shape[1:])
    count = torch.zeros(shape, dtype=torch.float64).index_add_(0, dense, weights)
    total = torch.zeros(shape, dtype=torch.float64).index_add_(0, dense, values * weights)
    mean = total / count.clamp(min=1)
    dev = (values - mean[dense]) ** 2 * weights
    sq = torch.zeros(shape, dtype=torch.float64).index_add_(0, dense, dev)
    std = (sq / (count - 1).clamp(min=1)).sqrt()
    return count[dense], mean[dense], std[dense]


def grpo_advantages(rewards: torch.Tensor, groups: torch.Tensor, *, norm_by_std: bool = True,
                    eps: float = 1e-6) -> torch.Tensor:
    """GRPO: ``(r - mean_group) / (std_group + eps)``; with ``norm_by_std=False`` it is
    Dr. GRPO's ``r - mean_group`` (no division by the std, which up-weights groups that are
    almost all right or all wrong). The std is the unbiased one (``torch.std``)."""
    count, mean, std = group_stats(rewards, groups)
    adv = rewards.to(torch.float64) - mean
    if norm_by_std:
        adv = adv / (std + eps)
    adv = torch.where(count > 1, adv, torch.zeros_like(adv))
    return adv.to(rewards.dtype if rewards.is_floating_point() else torch.float32)


def rloo_advantages(rewards: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """RLOO: each sample's baseline is the mean of the *other* samples of its group,
    ``r_i - (sum_g - r_i) / (n - 1)``."""
    count, mean, _ = group_stats(rewards, groups)
    r = rewards.to(torch.float64)
    loo = (mean * count - r) / (count - 1).clamp(min=1)
    adv = torch.where(count > 1, r - loo, torch.zeros_like(r))
    return adv.to(rewards.dtype if rewards.is_floating_point() else torch.float32)


def reinforce_pp_baseline_advantages(rewards: torch.Tensor, groups: torch.Tensor, *,
                                     token_counts: torch.Tensor | None = None,
                                     eps: float = 1e-8) -> torch.Tensor:
    """REINFORCE++ with a baseline: subtract the group mean, then whiten over the whole batch.

    As in REINFORCE++, the whitening is over tokens: with ``token_counts`` (trained tokens per
    sample) each sample weighs as many times as it has tokens; without, every sample weighs
    one. Groups of one sample keep ``r - r = 0`` before the whitening.
    """
    _, mean, _ = group_stats(rewards, groups)
    centred = rewards.to(torch.float64) - mean
    w = torch.ones_like(centred) if token_counts is None else token_counts.to(torch.float64)
    total = w.sum().clamp(min=1)
    mu = (centred * w).sum() / total
    var = ((centred - mu) ** 2 * w).sum() / total
    # Bessel's correction as in masked_whiten (unbiased over the weight mass).
    if total > 1:
        var = var * total / (total - 1)
    adv = (centred - mu) / (var.sqrt() + eps)
    return adv.to(rewards.dtype if rewards.is_floating_point() else torch.float32)


def turn_level_advantages(turn_rewards: torch.Tensor, turn_mask: torch.Tensor, groups: torch.Tensor, *,
                          min_count: int = 2, norm_by_std: bool = False, reward_to_go: bool = False,
                          eps: float = 1e-6) -> torch.Tensor:
    """Turn-level advantages (CM2's turn mode).

    ``turn_rewards [N, T]``: the reward of sample i's turn t; ``turn_mask [N, T]``: 1 where
    sample i reached turn t. For each turn position, the advantage is the turn's reward minus
    the mean over the members of its group that reached that position; it is 0 where fewer than
    ``min_count`` members reached it, and 0 on positions a sample did not reach.

    ``reward_to_go`` first replaces each turn's reward by the sum of its own and all later turn
    rewards of the same sample (credit for what the turn led to); ``norm_by_std`` divides by
    the std of those members, as GRPO does.
    """
    if turn_rewards.shape != turn_mask.shape or turn_rewards.dim() != 2:
        raise ValueError(f"turn_rewards {tuple(turn_rewards.shape)} and turn_mask "
                         f"{tuple(turn_mask.shape)} must both be [N, T]")
    mask = turn_mask.to(torch.float64)
    r = turn_rewards.to(torch.float64) * mask
    if reward_to_go:
        r = r.flip(1).cumsum(1).flip(1) * mask
    count, mean, std = group_stats(r, groups, mask)
    adv = r - mean
    if norm_by_std:
        adv = adv / (std + eps)
    adv = torch.where((count >= min_count) & (mask > 0), adv, torch.zeros_like(adv))
    return adv.to(turn_rewards.dtype if turn_rewards.is_floating_point() else torch.float32)
