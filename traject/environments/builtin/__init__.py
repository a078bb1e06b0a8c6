"""Built-in envs; importing this module registers them."""

from traject.environments.builtin import conversational, gui, lookup, swe  # noqa: F401
