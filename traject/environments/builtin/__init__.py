"""Built-in envs; importing this module registers them."""

from traject.environments.builtin import conversational, lookup  # noqa: F401
