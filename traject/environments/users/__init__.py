"""Simulated users."""

from traject.environments.users.base import UserSimulator, UserTurn

__all__ = ["UserSimulator", "UserTurn"]
