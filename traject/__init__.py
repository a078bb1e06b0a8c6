"""traject: reinforcement learning of LLM agents that act over many turns with tools."""

from traject.environments.registry import load_tasks, make, register_env

__version__ = "0.1.0"
__all__ = ["__version__", "load_tasks", "make", "register_env"]
