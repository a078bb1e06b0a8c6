"""Agents: policies, tool-call formats, the agent loop, rollouts and the trajectory store."""

from traject.agents.loop import AgentLoop
from traject.agents.policy import Policy, PolicyError, PolicyOutput
from traject.agents.rollouts import Rollouts
from traject.agents.scripted import ScriptedPolicy
from traject.agents.store import TrajectoryStore
from traject.agents.tokens import build_token_views

__all__ = ["AgentLoop", "Policy", "PolicyError", "PolicyOutput", "Rollouts", "ScriptedPolicy",
           "TrajectoryStore", "build_token_views"]
