"""The GroupReward a training config names (``env.group_reward``), for both engines."""

from __future__ import annotations

from typing import Any

from traject.rewards.base import GroupReward
from traject.trainers.config import ConfigError


def load_group_reward(target: str, args: dict[str, Any] | None = None) -> GroupReward:
    """``package.module:attribute``: a GroupReward, or a class/factory called with ``args``."""
    from traject.eval.policies import load_object

    obj = load_object(target)
    if not isinstance(obj, GroupReward) and callable(obj):
        obj = obj(**(args or {}))
    if not isinstance(obj, GroupReward):
        raise ConfigError(f"env.group_reward: {target!r} gives a {type(obj).__name__}, not a traject GroupReward. "
                          "Fix: name a GroupReward subclass or a factory returning one.")
    return obj
