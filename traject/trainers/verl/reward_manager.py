"""``traject_group``: a GroupReward scored over each task's G samples inside veRL.

Registered in veRL's reward-manager registry (``verl.experimental.reward_loop.reward_manager``).
With ``env.group_reward`` set, TrajectAgentLoop leaves each sample's score to veRL's reward
loop and attaches the trajectory; veRL calls ``run_single`` once per sample. The manager
collects the samples by ``uid`` (veRL's id of one task's G samples), and when all G are in (or
``group_timeout_s`` passed) calls ``score_group`` once over those that can be scored, adds
its result to each trajectory's own reward (as the local engine's Rollouts does, with
``merge_group_score``) and answers every waiting sample.

All G samples of a task must reach the same reward-loop worker process, so the launcher runs
one (``reward.num_workers=1``; it is an async actor, the samples wait concurrently).

Samples that must not train (infra error, cancelled, failed own reward) are not shown to
``score_group`` and score 0 with ``traject_infra_error=1``; their rows train nothing (their
response mask is 0) and traject's estimators leave them out. A group reward that fails scores
its whole group 0 alike, so that group's advantages are 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, JsonValue

from traject.trainers.verl._require import require_verl

require_verl("verl.experimental.reward_loop.reward_manager")

from verl.experimental.reward_loop.reward_manager import register  # noqa: E402
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase  # noqa: E402

from traject.rewards.base import GroupReward  # noqa: E402
from traject.trainers.group_reward import load_group_reward  # noqa: E402
from traject.trainers.verl.dataset import task_from_row  # noqa: E402
from traject.trainers.verl.output import reward_info  # noqa: E402
from traject.types import RewardResult, Trajectory  # noqa: E402

log = logging.getLogger(__name__)
NAME = "traject_group"
SETTINGS_ENV = "TRAJECT_GROUP_REWARD"


class GroupRewardSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: str
    args: dict[str, JsonValue] = {}
    group_size: int
    timeout_s: float = 600.0

    @classmethod
    def from_env(cls) -> GroupRewardSettings:
        raw = os.environ.get(SETTINGS_ENV)
        if not raw:
            raise RuntimeError(f"the {NAME} reward manager needs {SETTINGS_ENV} (set by traject's veRL launcher "
                               "when env.group_reward is configured)")
        return cls.model_validate_json(raw)


@dataclass
class _Group:
    size: int
    members: list[tuple[Trajectory, bool]] = field(default_factory=list)
    full: asyncio.Event = field(default_factory=asyncio.Event)
    results: list[tuple[float, dict[str, Any]]] | None = None
    answered: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@register(NAME)
class TrajectGroupRewardManager(RewardManagerBase):
    def __init__(self, config: Any, tokenizer: Any, compute_score: Any = None, reward_router_address: Any = None,
                 reward_model_tokenizer: Any = None, settings: GroupRewardSettings | None = None,
                 group_reward: GroupReward | None = None) -> None:
        super().__init__(config, tokenizer, compute_score)
        self.settings = settings or GroupRewardSettings.from_env()
        self.group_reward = group_reward or load_group_reward(self.settings.target, dict(self.settings.args))
        self._groups: dict[str, _Group] = {}

    async def run_single(self, data: Any) -> dict[str, Any]:
        nt = data.non_tensor_batch
        uid = str(nt["uid"][-1])
        extra = nt["tool_extra_fields"][-1]
        traj = Trajectory.model_validate_json(extra["traject_trajectory"])
        trainable = bool(extra.get("traject_trainable", True))
        group = self._groups.setdefault(uid, _Group(self.settings.group_size))
        slot = len(group.members)
        group.members.append((traj, trainable))
        if len(group.members) >= group.size:
            group.full.set()
        try:
            await asyncio.wait_for(group.full.wait(), self.settings.timeout_s)
        except TimeoutError:
            log.warning("group %s: %d of %d samples after %.0fs; scoring those", uid, len(group.members),
                        group.size, self.settings.timeout_s)
        async with group.lock:
            if group.results is None:
                group.results = await self._score(group, task_from_row(nt["extra_info"][-1]))
        score, info = group.results[slot]
        group.answered += 1
        if group.answered >= len(group.members):
            self._groups.pop(uid, None)
        return {"reward_score": score, "reward_extra_info": info}

    async def _score(self, group: _Group, task: Any) -> list[tuple[float, dict[str, Any]]]:
        from traject.agents.rollouts import merge_group_score

        trajs = [t for t, _ in group.members]
        scorable = [i for i, (t, ok) in enumerate(group.members) if ok and t.reward is not None and not t.reward.failed]
        failed = False
        try:
            scores = await self.group_reward.score_group([trajs[i] for i in scorable], task) if scorable else []
            if len(scores) != len(scorable):
                raise ValueError(f"score_group returned {len(scores)} results for {len(scorable)} trajectories")
        except Exception as exc:  # noqa: BLE001 - a failed group reward fails the group, never one member
            log.warning("group reward failed on task %s: %s", task.id, exc)
            failed, scores = True, [RewardResult(failed=True, error=str(exc)) for _ in scorable]
        for i, score in zip(scorable, scores, strict=True):
            trajs[i].reward = merge_group_score(trajs[i].reward, score, self.group_reward.name)
        out = []
        for i, traj in enumerate(trajs):
            ok = i in scorable and not failed and not (traj.reward is not None and traj.reward.failed)
            info: dict[str, Any] = dict(reward_info(traj, ok, uniform_keys=True))
            group_score = traj.reward.components.get(self.group_reward.name, 0.0) if ok and traj.reward else 0.0
            info["traject_group_reward"] = float(group_score)
            info["traject_group_failed"] = 1.0 if failed else 0.0
            out.append((float(traj.reward.total) if ok and traj.reward is not None else 0.0, info))
        return out
