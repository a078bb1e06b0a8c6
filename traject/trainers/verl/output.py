"""A traject Trajectory as veRL ``AgentLoopOutput``s.

Each prefix-consistent TokenView becomes one output: ``prompt_ids`` are the view's first
prompt, ``response_ids`` everything after it, ``response_mask`` is the view's mask there (1
exactly on sampled tokens, 0 on tool results, user turns and template glue) and
``response_logprobs`` the sampler's logprobs. ``reward_score`` is the traject reward's total
(veRL puts it on the last response token of ``rm_scores``), its components go to
``extra_fields["reward_extra_info"]``.

Trajectories that must not train (an infra error, a reward that could not be computed) are
never scored 0 and trained on:

* under veRL's V1 trainer (rows carry a ``session_id``) the loop returns no output at all, which
  veRL 0.9.1 accepts: the session is simply absent from its group;
* under the legacy AgentLoopWorker, which needs exactly one output per row, the output has an
  all-zero ``response_mask`` (so no token trains) and ``traject_infra_error=1`` in its reward
  info; the ``traject_grpo`` advantage estimator leaves such rows out of the group baseline.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from traject.types import Status, TokenView, Trajectory

log = logging.getLogger(__name__)


@dataclass
class Segment:
    prompt_ids: list[int]
    response_ids: list[int]
    response_mask: list[int]
    response_logprobs: list[float]


@dataclass
class Conversion:
    segments: list[Segment]
    trainable: bool
    reward: float
    reward_info: dict[str, float | str]
    dropped_segments: int = 0
    reasons: list[str] = field(default_factory=list)


def _segment(view: TokenView, response_length: int) -> Segment:
    p = view.prompt_len
    return Segment(view.ids[:p], view.ids[p:][:response_length], view.mask[p:][:response_length],
                   view.logprobs[p:][:response_length])


def reward_info(traj: Trajectory, trainable: bool, *, components: list[str] | None = None,
                uniform_keys: bool = False) -> dict[str, float | str]:
    """The ``reward_extra_info`` of a trajectory: total, success, infra flag, and components.

    Components always travel as one JSON string (``traject_components``), and as one number
    each (``traject_<name>``) where that is safe: for the names in ``components`` (then every
    row has them, 0.0 where absent), or for whatever the reward gave when rows need not share
    keys. veRL's legacy batch assembly (``uniform_keys``) reads every key of the first row from
    every row, so there undeclared components stay in the JSON string only.
    """
    r = traj.reward
    comps = {k: float(v) for k, v in r.components.items()} if (r is not None and trainable) else {}
    info: dict[str, float | str] = {
        "traject_score": float(r.total) if (r is not None and trainable) else 0.0,
        "traject_success": 1.0 if traj.success and trainable else 0.0,
        "traject_infra_error": 0.0 if trainable else 1.0,
        "traject_truncated": 1.0 if traj.status in (Status.MAX_TURNS, Status.TIMEOUT) else 0.0,
        "traject_components": json.dumps(comps, sort_keys=True),
    }
    if components is not None:
        names = components
    elif uniform_keys:
        names = []
    else:
        names = sorted(comps)
    for name in names:
        info[f"traject_{name}"] = comps.get(name, 0.0)
    return info


def convert(traj: Trajectory, *, prompt_length: int, response_length: int,
            components: list[str] | None = None, uniform_keys: bool = False) -> Conversion:
    """Split ``traj`` into the segments veRL can train on, with its reward."""
    reasons: list[str] = []
    if traj.status in (Status.INFRA_ERROR, Status.CANCELLED):
        reasons.append(f"{traj.status.value}: {traj.error}")
    elif traj.reward is None:
        reasons.append("no reward: the env has no default reward and none was configured")
    elif traj.reward.failed:
        reasons.append(f"reward failed: {traj.reward.error}")
    segments: list[Segment] = []
    dropped = 0
    for view in traj.token_views:
        if view.prompt_len > prompt_length:
            dropped += 1  # a later segment's prompt that does not fit veRL's prompt width
            continue
        if view.prompt_len >= len(view.ids):
            continue
        segments.append(_segment(view, response_length))
    if not segments and not reasons:
        reasons.append("no token-exact segment fits data.max_prompt_length")
    trainable = not reasons
    reward = float(traj.reward.total) if trainable and traj.reward is not None else 0.0
    info = reward_info(traj, trainable, components=components, uniform_keys=uniform_keys)
    return Conversion(segments if trainable else [], trainable, reward, info, dropped, reasons)


#: extra_fields key: ``[[position in the response, score], ...]``, one per assistant turn.
TOKEN_SCORES = "traject_token_scores"


def turn_token_scores(traj: Trajectory, seg: Segment, unit: str = "per_turn") -> list[list[float]]:
    """Each assistant turn's reward (CM2's per-turn scores, or per-step ones such as G-RA's
    gated step rewards) at the position of that turn's last sampled token in ``seg``'s
    response: what the turn estimator reads from veRL's token-level scores. Turns outside the
    segment (an earlier segment, or cut by the response budget) have no position here."""
    from traject.trainers.advantage import assistant_turn_rewards

    if traj.reward is None or traj.reward.failed:
        return []
    rewards = assistant_turn_rewards(traj, unit)
    view = next((v for v in traj.token_views if v.ids[: v.prompt_len] == seg.prompt_ids
                 and v.ids[v.prompt_len:][: len(seg.response_ids)] == seg.response_ids), None)
    if view is None or not view.turn:
        return []
    turns = view.turn[view.prompt_len:][: len(seg.response_ids)]
    last: dict[int, int] = {}
    for pos, (k, m) in enumerate(zip(turns, seg.response_mask, strict=True)):
        if k >= 0 and m:
            last[k] = pos
    return [[float(pos), float(rewards[k])] for k, pos in sorted(last.items()) if k < len(rewards)]


def num_chat_turns(traj: Trajectory) -> int:
    """veRL's ``num_turns``: user, assistant and tool messages."""
    return sum(1 for m in traj.messages if m.role != "system")
