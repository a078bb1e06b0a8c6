"""Environments: the Env contract, ToolEnv, simulated users, the registry and built-in envs."""

from traject.environments.base import Env, EnvSpec, StepResult
from traject.environments.registry import EnvEntry, load_tasks, make, register_env, registry
from traject.environments.tool_env import ToolEnv

__all__ = ["Env", "EnvEntry", "EnvSpec", "StepResult", "ToolEnv", "load_tasks", "make",
           "register_env", "registry"]
