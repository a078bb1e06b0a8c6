"""The Reward contracts."""

from __future__ import annotations

from abc import ABC, abstractmethod

from traject.types import RewardResult, Task, Trajectory


class Reward(ABC):
    """Scores one trajectory. Rewards are pure functions of the trajectory and the task (plus
    judge calls): whatever an env must measure while its sandbox or database is still open,
    it records in the trajectory (step ``info``, ``final_answer``) for the reward to read."""

    name: str = "reward"

    @abstractmethod
    async def score(self, traj: Trajectory, task: Task) -> RewardResult: ...


class GroupReward(ABC):
    """Scores the G samples of one task together (region consistency, relative judges)."""

    name: str = "group_reward"

    @abstractmethod
    async def score_group(self, trajs: list[Trajectory], task: Task) -> list[RewardResult]: ...
