"""Agents: policies, tool-call formats, chat rendering, the agent loop, rollouts and the
trajectory store. ``HFPolicy`` (torch, transformers) is imported on first use."""

from typing import Any

from traject.agents.chat_renderer import ChatRenderer, RenderedPrompt
from traject.agents.loop import AgentLoop
from traject.agents.policy import Policy, PolicyError, PolicyOutput
from traject.agents.rollouts import Rollouts
from traject.agents.scripted import ScriptedPolicy
from traject.agents.store import TrajectoryStore
from traject.agents.tokens import build_token_views

_LAZY = {"HFPolicy": "traject.agents.hf", "HFPolicyConfig": "traject.agents.hf", "build_tiny_model": "traject.agents.hf"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'traject.agents' has no attribute {name!r}")


__all__ = ["AgentLoop", "ChatRenderer", "HFPolicy", "HFPolicyConfig", "Policy", "PolicyError", "PolicyOutput",
           "RenderedPrompt", "Rollouts", "ScriptedPolicy", "TrajectoryStore", "build_tiny_model",
           "build_token_views"]
