"""Rewards: the contracts, combinators, paper-faithful rewards and verifiers.

Heavier pieces (checklist, GUI, verifiers) are imported from their own modules:
``from traject.rewards.checklist import ChecklistReward``.
"""

from traject.rewards.answer_match import AnswerMatch
from traject.rewards.base import GroupReward, Reward
from traject.rewards.combinators import Constant, Term, WeightedSum
from traject.rewards.gated import GatedAccumulation, GateLevel
from traject.rewards.judge import JudgeConfig, JudgeError, JudgeParseError, LLMJudge
from traject.rewards.step import EnvStepRewards, ToolCallValidity, ToolCallValidityConfig

__all__ = [
    "AnswerMatch", "Constant", "EnvStepRewards", "GateLevel", "GatedAccumulation", "GroupReward",
    "JudgeConfig", "JudgeError", "JudgeParseError", "LLMJudge", "Reward", "Term", "ToolCallValidity",
    "ToolCallValidityConfig", "WeightedSum",
]
