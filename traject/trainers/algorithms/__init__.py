"""Advantage estimators and policy losses: pure torch, shared by every backend.

Nothing here knows about trajectories, models or configs: tensors in, tensors out, so the
built-in learner and the veRL backend compute exactly the same thing.
"""

from traject.trainers.algorithms.advantages import (
    group_stats,
    grpo_advantages,
    reinforce_pp_baseline_advantages,
    rloo_advantages,
    turn_level_advantages,
)
from traject.trainers.algorithms.losses import (
    AggMode,
    KLKind,
    PolicyLossOutput,
    aggregate,
    entropy_from_logits,
    kl_penalty,
    ppo_clip_loss,
    sft_loss,
    token_logprobs,
    truncated_is_weights,
)

__all__ = [
    "AggMode",
    "KLKind",
    "PolicyLossOutput",
    "aggregate",
    "entropy_from_logits",
    "group_stats",
    "grpo_advantages",
    "kl_penalty",
    "ppo_clip_loss",
    "reinforce_pp_baseline_advantages",
    "rloo_advantages",
    "sft_loss",
    "token_logprobs",
    "truncated_is_weights",
    "turn_level_advantages",
]
