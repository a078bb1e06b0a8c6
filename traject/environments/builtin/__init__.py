"""Built-in envs; importing this module registers them."""

from traject.environments.builtin import gui, lookup  # noqa: F401
