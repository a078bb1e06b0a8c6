"""From scored trajectories to advantages: the bridge between Trajectory and the pure estimators.

Groups are the samples of one task (``task_id``). Sequence-level estimators give one number
per trajectory; the turn mode gives one number per assistant turn (which the batching maps to
tokens through ``TokenView.turn``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from traject.trainers.algorithms.advantages import (
    grpo_advantages,
    reinforce_pp_baseline_advantages,
    rloo_advantages,
    turn_level_advantages,
)
from traject.trainers.config import AlgorithmConfig
from traject.types import Trajectory

__all__ = ["assistant_turn_rewards", "compute_advantages", "group_ids"]


def group_ids(trajectories: Sequence[Trajectory]) -> torch.Tensor:
    index: dict[str, int] = {}
    return torch.tensor([index.setdefault(t.task_id, len(index)) for t in trajectories], dtype=torch.long)


def assistant_turn_rewards(traj: Trajectory, unit: str = "per_turn") -> list[float]:
    """One reward per assistant message of ``traj``.

    ``per_step``: ``RewardResult.per_step[k]`` is assistant message k's reward. ``per_turn``:
    ``RewardResult.per_turn[u]`` is the reward of conversation turn u (the assistant messages
    after the u-th user message), and each assistant message gets its turn's reward. Falls back
    to the other list when the chosen one is empty.
    """
    assert traj.reward is not None
    per_turn, per_step = traj.reward.per_turn, traj.reward.per_step
    if unit == "per_step" and not per_step and per_turn:
        unit = "per_turn"
    if unit == "per_turn" and not per_turn and per_step:
        unit = "per_step"
    if unit == "per_step":
        return [float(x) for x in per_step]
    if not per_turn:
        raise ValueError(f"trajectory {traj.id} (task {traj.task_id}): turn-level advantages need "
                         "RewardResult.per_turn or per_step; this reward gives neither. Use a sequence-level "
                         "advantage (algorithm.advantage: grpo) or a reward that scores turns.")
    out: list[float] = []
    users = 0
    for m in traj.messages:
        if m.role == "user":
            users += 1
        elif m.role == "assistant":
            u = min(max(users - 1, 0), len(per_turn) - 1)
            out.append(float(per_turn[u]))
    return out


def compute_advantages(trajectories: Sequence[Trajectory], cfg: AlgorithmConfig) -> list[float | list[float]]:
    """Advantages for scored, trainable ``trajectories``: one float each, or (turn mode) one
    list with a float per assistant turn."""
    if not trajectories:
        return []
    groups = group_ids(trajectories)
    if cfg.advantage == "turn":
        per = [assistant_turn_rewards(t, cfg.turn_rewards) for t in trajectories]
        width = max((len(p) for p in per), default=0) or 1
        rewards = torch.zeros(len(per), width)
        mask = torch.zeros(len(per), width)
        for i, p in enumerate(per):
            rewards[i, :len(p)] = torch.tensor(p, dtype=torch.float32)
            mask[i, :len(p)] = 1
        adv = turn_level_advantages(rewards, mask, groups, min_count=cfg.turn_min_count,
                                    norm_by_std=cfg.divide_by_std, reward_to_go=cfg.turn_reward_to_go)
        return [adv[i, :len(p)].tolist() for i, p in enumerate(per)]
    rewards = torch.tensor([t.reward.total if t.reward else 0.0 for t in trajectories], dtype=torch.float32)
    if cfg.advantage in ("grpo", "dr_grpo"):
        out = grpo_advantages(rewards, groups, norm_by_std=cfg.divide_by_std)
    elif cfg.advantage == "rloo":
        out = rloo_advantages(rewards, groups)
    elif cfg.advantage == "reinforce_pp":
        counts = torch.tensor([sum(v.num_trained_tokens for v in t.token_views) for t in trajectories])
        out = reinforce_pp_baseline_advantages(rewards, groups, token_counts=counts)
    else:  # pragma: no cover - the config's Literal rules it out
        raise ValueError(f"unknown advantage estimator {cfg.advantage!r}")
    return [float(x) for x in out]
