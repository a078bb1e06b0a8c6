"""traject's advantage estimators and policy loss inside veRL, through veRL 0.9.1's own
registries (``register_adv_est`` and ``register_policy_loss`` in ``verl/trainer/ppo/core_algos.py``).

Each function here adapts veRL's tensors to :mod:`traject.trainers.algorithms` and back, so
both engines compute advantages and losses with the same code:

* ``traject_grpo``, ``traject_dr_grpo``, ``traject_rloo``, ``traject_reinforce_pp``: the
  sequence reward is the row's token-level reward summed; groups are veRL's ``uid``.
* ``traject_turn``: CM2's turn-level advantages. Each run of trained tokens in a row is one
  assistant turn, and the token-level reward inside it is that turn's reward (the agent loop
  puts each turn's reward on its last token); the advantage of a turn lands on its tokens.
* ``traject_ppo_clip``: the PPO-clip policy loss (clip-higher, optional dual clip, truncated
  IS weights, the same token aggregation).

A row whose response mask is all 0 is a trajectory that must not train (an infra error, a
cancelled episode, a failed reward): every estimator leaves it out of its group's statistics
and gives it advantage 0, so healthy rows get exactly the advantages they would get without it.

traject's settings (``algorithm:`` of the TrainConfig) reach veRL's worker processes in the
``TRAJECT_ALGORITHM`` environment variable (veRL's own config rejects unknown keys); the
launcher sets it, with ``register`` as Ray's ``worker_process_setup_hook``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from traject.trainers.algorithms import (
    grpo_advantages,
    ppo_clip_loss,
    reinforce_pp_baseline_advantages,
    rloo_advantages,
    turn_level_advantages,
)
from traject.trainers.config import AlgorithmConfig

__all__ = ["ESTIMATORS", "LOSSES", "algorithm_settings", "register", "turn_segments"]

ALGORITHM_ENV = "TRAJECT_ALGORITHM"
_cache: tuple[str, AlgorithmConfig] | None = None


def algorithm_settings() -> AlgorithmConfig:
    """traject's algorithm settings in this process (defaults when the launcher set none)."""
    global _cache
    raw = os.environ.get(ALGORITHM_ENV, "")
    if _cache is None or _cache[0] != raw:
        _cache = (raw, AlgorithmConfig.model_validate_json(raw) if raw else AlgorithmConfig())
    return _cache[1]


def _groups(index: Any, n: int) -> torch.Tensor:
    if index is None:
        return torch.arange(n)
    ids: dict[Any, int] = {}
    return torch.tensor([ids.setdefault(u, len(ids)) for u in np.asarray(index, dtype=object).tolist()])


def _sequence_estimator(kind: str):
    def estimate(token_level_rewards: torch.Tensor, response_mask: torch.Tensor, index: Any = None,
                 config: Any = None, **_: Any) -> tuple[torch.Tensor, torch.Tensor]:
        s = algorithm_settings()
        mask = response_mask.to(torch.float32)
        keep = (mask.sum(-1) > 0).nonzero(as_tuple=True)[0]
        groups = _groups(index, len(mask))[keep]
        rewards = token_level_rewards.to(torch.float32).sum(-1)[keep]
        if kind in ("grpo", "dr_grpo"):
            adv = grpo_advantages(rewards, groups, norm_by_std=s.divide_by_std if s.advantage == kind
                                  else kind == "grpo")
        elif kind == "rloo":
            adv = rloo_advantages(rewards, groups)
        else:
            adv = reinforce_pp_baseline_advantages(rewards, groups, token_counts=mask.sum(-1)[keep])
        out = torch.zeros_like(mask)
        out[keep] = adv.to(out.dtype)[:, None] * mask[keep]
        return out, out

    estimate.__name__ = f"compute_traject_{kind}"
    return estimate


def turn_segments(response_mask: torch.Tensor) -> list[list[tuple[int, int]]]:
    """Per row, the ``[start, end)`` of each run of trained tokens: one per assistant turn."""
    rows = []
    for row in response_mask.to(torch.int8).tolist():
        runs, start = [], None
        for j, m in enumerate(row + [0]):
            if m and start is None:
                start = j
            elif not m and start is not None:
                runs.append((start, j))
                start = None
        rows.append(runs)
    return rows


def compute_traject_turn(token_level_rewards: torch.Tensor, response_mask: torch.Tensor, index: Any = None,
                         config: Any = None, **_: Any) -> tuple[torch.Tensor, torch.Tensor]:
    s = algorithm_settings()
    segs = turn_segments(response_mask)
    width = max((len(r) for r in segs), default=0) or 1
    n = len(segs)
    rewards = torch.zeros(n, width)
    tmask = torch.zeros(n, width)
    for i, runs in enumerate(segs):
        for t, (a, b) in enumerate(runs):
            rewards[i, t] = token_level_rewards[i, a:b].to(torch.float32).sum()
            tmask[i, t] = 1
    adv_turn = turn_level_advantages(rewards, tmask, _groups(index, n), min_count=s.turn_min_count,
                                     norm_by_std=s.divide_by_std, reward_to_go=s.turn_reward_to_go)
    out = torch.zeros_like(response_mask, dtype=torch.float32)
    for i, runs in enumerate(segs):
        for t, (a, b) in enumerate(runs):
            out[i, a:b] = adv_turn[i, t]
    return out, out


def compute_traject_ppo_clip(old_log_prob: torch.Tensor, log_prob: torch.Tensor, advantages: torch.Tensor,
                             response_mask: torch.Tensor, loss_agg_mode: str = "token-mean", config: Any = None,
                             rollout_is_weights: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """traject's PPO-clip loss with veRL's clip settings and global-batch normalisation."""
    s = algorithm_settings()
    clip_low = config.clip_ratio_low if config is not None and config.clip_ratio_low is not None else s.clip_low
    clip_high = config.clip_ratio_high if config is not None and config.clip_ratio_high is not None else s.clip_high
    info = dict(getattr(config, "global_batch_info", None) or {})
    dp = float(info.get("dp_size") or 1)
    tokens, seqs = info.get("batch_num_tokens"), info.get("global_batch_size")
    norm = info.get("loss_scale_factor") or (config.loss_scale_factor if config is not None else None)
    out = ppo_clip_loss(
        log_prob, old_log_prob, advantages, response_mask, clip_low=clip_low, clip_high=clip_high,
        dual_clip=s.dual_clip, agg=loss_agg_mode, is_weights=rollout_is_weights,
        num_tokens=float(tokens) / dp if tokens is not None else None,
        num_seqs=float(seqs) / dp if seqs is not None else None,
        norm_length=float(norm or response_mask.shape[-1]))
    metrics = {"actor/pg_clipfrac": float(out.clip_frac), "actor/ppo_kl": float(out.approx_kl)}
    return out.loss, metrics


ESTIMATORS = {
    "traject_grpo": _sequence_estimator("grpo"),
    "traject_dr_grpo": _sequence_estimator("dr_grpo"),
    "traject_rloo": _sequence_estimator("rloo"),
    "traject_reinforce_pp": _sequence_estimator("reinforce_pp"),
    "traject_turn": compute_traject_turn,
}
LOSSES = {"traject_ppo_clip": compute_traject_ppo_clip}


def register() -> None:
    """Add traject's estimators and loss to veRL's registries (idempotent). The launcher runs
    it in every Ray worker process (``worker_process_setup_hook``)."""
    from traject.trainers.verl._require import require_verl

    core = require_verl("verl.trainer.ppo.core_algos")
    for name, fn in ESTIMATORS.items():
        if core.ADV_ESTIMATOR_REGISTRY.get(name) is not fn:
            core.register_adv_est(name)(fn)
    for name, fn in LOSSES.items():
        if core.POLICY_LOSS_REGISTRY.get(name) is not fn:
            core.register_policy_loss(name)(fn)
    import traject.trainers.verl.reward_manager  # noqa: F401  (registers traject_group)
