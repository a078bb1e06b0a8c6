"""``traject.gym.make(ENV)``: a traject env as a text ``gymnasium.Env`` (needs the interop extra).

>>> import traject.gym  # doctest: +SKIP
>>> env = traject.gym.make("lookup", task_options={"n": 4})  # doctest: +SKIP
>>> env = gymnasium.make(traject.gym.register("lookup"))  # "traject/lookup-v0"  # doctest: +SKIP
"""

from __future__ import annotations

try:
    from traject.interop.gym_env import TrajectGymEnv, UnicodeText, UnsupportedObservation, make, register
except ImportError as exc:  # pragma: no cover - the interop extra is installed in CI
    raise ImportError("traject.gym needs gymnasium: pip install 'traject[interop]'") from exc

__all__ = ["TrajectGymEnv", "UnicodeText", "UnsupportedObservation", "make", "register"]
