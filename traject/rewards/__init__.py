"""Rewards: the contracts, combinators, paper-faithful rewards and verifiers.

The light pieces are importable from here; the GUI rewards (numpy) and the verifiers have their
own packages: ``from traject.rewards.gui import BTLReward``,
``from traject.rewards.verifiers import SQLExecutionMatch``. See docs/rewards.md.
"""

from traject.rewards.answer_match import AnswerMatch
from traject.rewards.base import GroupReward, Reward
from traject.rewards.checklist import Checklist, ChecklistConfig, ChecklistReward, TurnCheck
from traject.rewards.combinators import Constant, Term, WeightedSum
from traject.rewards.efficiency import Efficiency, EfficiencyConfig
from traject.rewards.emotion import EmotionConfig, EmotionReward, UserState
from traject.rewards.gated import GatedAccumulation, GateLevel
from traject.rewards.judge import JudgeConfig, JudgeError, JudgeParseError, LLMJudge
from traject.rewards.judge_reward import RubricJudge, RubricJudgeConfig
from traject.rewards.step import EnvStepRewards, ToolCallValidity, ToolCallValidityConfig

__all__ = [
    "AnswerMatch", "Checklist", "ChecklistConfig", "ChecklistReward", "Constant", "Efficiency", "EfficiencyConfig",
    "EmotionConfig", "EmotionReward", "EnvStepRewards", "GateLevel", "GatedAccumulation", "GroupReward",
    "JudgeConfig", "JudgeError", "JudgeParseError", "LLMJudge", "Reward", "RubricJudge", "RubricJudgeConfig",
    "Term", "ToolCallValidity", "ToolCallValidityConfig", "TurnCheck", "UserState", "WeightedSum",
]
