"""Built-in envs; importing this module registers them."""

from traject.environments.builtin import gui, lookup, swe  # noqa: F401
