"""Simulated users: the contract, an LLM-played tau-style customer, a scripted user, and the
RLVER / SAGE emotion user; plus the model client and the response cache they share."""

from traject.environments.users.base import UserSimulator, UserTurn
from traject.environments.users.cache import ResponseCache, default_cache
from traject.environments.users.emotion import EmotionProfile, EmotionUser, EmotionUserConfig, load_profiles
from traject.environments.users.llm import ChatReply, SimulatorLLM, SimulatorLLMConfig
from traject.environments.users.llm_user import LLMUser, UserInstructions, UserScenario
from traject.environments.users.scripted import ScriptedUser
from traject.environments.users.view import strip_think

__all__ = ["ChatReply", "EmotionProfile", "EmotionUser", "EmotionUserConfig", "LLMUser", "ResponseCache",
           "ScriptedUser", "SimulatorLLM", "SimulatorLLMConfig", "UserInstructions", "UserScenario",
           "UserSimulator", "UserTurn", "default_cache", "load_profiles", "strip_think"]
