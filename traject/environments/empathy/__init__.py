"""The ``empathy`` env (RLVER): lift a simulated user's emotion."""

from traject.environments.empathy.env import empathy_tasks, make_empathy_env

__all__ = ["empathy_tasks", "make_empathy_env"]
