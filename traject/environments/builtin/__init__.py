"""Built-in envs; importing this module registers them."""

from traject.environments.builtin import lookup  # noqa: F401
