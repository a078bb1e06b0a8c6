"""Rewards: the contracts, combinators, paper-faithful rewards and verifiers."""

from traject.rewards.answer_match import AnswerMatch
from traject.rewards.base import GroupReward, Reward

__all__ = ["AnswerMatch", "GroupReward", "Reward"]
