"""``traject_grpo``: veRL's GRPO over the rows that can train.

Under veRL's legacy AgentLoopWorker every dataset row must yield one output, so a trajectory
that must not train (infra error, failed reward) comes back with an all-zero response mask.
Stock GRPO would still count its score in its group's mean and std, shifting its siblings'
advantages as if it had scored 0. This estimator runs veRL's own GRPO on the rows that have at
least one trainable token and gives the others advantage 0.

veRL's V1 trainer needs none of this: there the agent loop returns no output for such a
trajectory, and stock ``grpo`` applies.

Register it in the process that computes advantages (veRL's trainer actor) with
``register()``; the launcher does so through Ray's ``worker_process_setup_hook``.
"""

from __future__ import annotations

from typing import Any

NAME = "traject_grpo"


def compute_traject_grpo(token_level_rewards: Any, response_mask: Any, index: Any, epsilon: float = 1e-6,
                         norm_adv_by_std_in_grpo: bool | None = None, config: Any = None,
                         **_: Any) -> tuple[Any, Any]:
    import numpy as np
    import torch
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

    if norm_adv_by_std_in_grpo is None:
        norm_adv_by_std_in_grpo = bool(config.get("norm_adv_by_std_in_grpo", True)) if config is not None else True
    keep = (response_mask.sum(dim=-1) > 0).nonzero(as_tuple=True)[0]
    advantages = torch.zeros_like(token_level_rewards, dtype=torch.float32)
    if len(keep):
        sub, _ = compute_grpo_outcome_advantage(
            token_level_rewards=token_level_rewards[keep], response_mask=response_mask[keep],
            index=np.asarray(index, dtype=object)[keep.cpu().numpy()], epsilon=epsilon,
            norm_adv_by_std_in_grpo=norm_adv_by_std_in_grpo, config=config)
        advantages[keep] = sub.to(advantages.dtype)
    return advantages, advantages


def register() -> None:
    """Add ``traject_grpo`` to veRL's advantage-estimator registry (idempotent)."""
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, register_adv_est

    if ADV_ESTIMATOR_REGISTRY.get(NAME) is not compute_traject_grpo:
        register_adv_est(NAME)(compute_traject_grpo)
