"""Named envs: ``traject.make(name, **config)``, and plugin discovery through the
``traject.envs`` entry-point group.

A plugin package declares::

    [project.entry-points."traject.envs"]
    my_env = "my_pkg.envs:ENTRY"        # an EnvEntry

and a task source, so that ``traject eval --env my_env`` works without code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel

from traject.environments.base import Env
from traject.types import Task

ENTRY_POINT_GROUP = "traject.envs"
log = logging.getLogger(__name__)

# ``SCHEME:REST`` names an env another standard defines; the adapter module's
# ``scheme_entry(rest)`` returns its EnvEntry (imported only when such a name is used).
SCHEMES = {
    "openenv": "traject.interop.openenv_client",
    "verifiers": "traject.interop.verifiers_env",
    "harbor": "traject.interop.harbor",
}


@dataclass(frozen=True)
class EnvEntry:
    """A registered env: how to make one episode's Env, and where its tasks come from.

    ``make(**config)`` returns a fresh Env. ``tasks(**options)`` returns tasks; the options
    every built-in source understands are ``split``, ``n`` and ``seed``, plus ``path`` for
    sources that load a benchmark's files. ``task_data`` is the pydantic model of
    ``Task.data`` (a class, or ``"module:Class"`` imported when needed): task files are checked
    against it before anything runs.
    """

    name: str
    make: Callable[..., Env]
    tasks: Callable[..., list[Task]] | None = None
    description: str = ""
    task_data: type[BaseModel] | str | None = None

    def task_data_model(self) -> type[BaseModel] | None:
        if isinstance(self.task_data, str):
            import importlib

            module, _, attr = self.task_data.partition(":")
            return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]
        return self.task_data


class EnvRegistry:
    def __init__(self) -> None:
        self._entries: dict[str, EnvEntry] = {}
        self._discovered = False

    def register(self, entry: EnvEntry, *, replace: bool = False) -> EnvEntry:
        if entry.name in self._entries and self._entries[entry.name] is not entry and not replace:
            raise ValueError(f"an env named {entry.name!r} is already registered; pass replace=True")
        self._entries[entry.name] = entry
        return entry

    def discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        # Built-in envs register themselves on import.
        import traject.environments.builtin  # noqa: F401

        sources: dict[str, str] = {name: "traject (built in)" for name in self._entries}
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                obj = ep.load()
            except Exception as exc:  # noqa: BLE001 - one broken plugin must not hide the rest
                log.warning("env plugin %r (%s) failed to load: %s", ep.name, ep.value, exc)
                continue
            if isinstance(obj, EnvEntry):
                entry = obj
            elif callable(obj):
                entry = EnvEntry(name=ep.name, make=obj)
            else:
                log.warning("env plugin %r (%s) is neither an EnvEntry nor a factory", ep.name, ep.value)
                continue
            source = _distribution(ep)
            if entry.name in self._entries:
                log.warning("two env plugins are named %r: %s and %s; %s is used (uninstall one, or "
                            "name it by module with --env MODULE:ENTRY)", entry.name,
                            sources.get(entry.name, "?"), source, sources.get(entry.name, "?"))
                continue
            self._entries[entry.name] = entry
            sources[entry.name] = source

    def get(self, name: str) -> EnvEntry:
        scheme, sep, rest = name.partition(":")
        if sep and scheme not in SCHEMES:
            return _load_entry(name)  # package.module:ENTRY
        self.discover()
        if sep and name not in self._entries:
            import importlib

            self._entries[name] = importlib.import_module(SCHEMES[scheme]).scheme_entry(rest)
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"no env named {name!r}; registered envs: "
                           f"{', '.join(sorted(self._entries)) or '(none)'}") from None

    def entries(self) -> dict[str, EnvEntry]:
        self.discover()
        return dict(sorted(self._entries.items()))


registry = EnvRegistry()


def _distribution(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else ep.value


def _load_entry(target: str) -> EnvEntry:
    """``package.module:ATTR``: an EnvEntry, or an Env factory, named by module (no plugin needed)."""
    import importlib

    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise KeyError(f"env {target!r}: cannot load it ({exc}); expected 'package.module:ENTRY' naming "
                       "an EnvEntry or an Env factory") from None
    if isinstance(obj, EnvEntry):
        return obj
    if callable(obj):
        return EnvEntry(name=target, make=obj)
    raise KeyError(f"env {target!r} is a {type(obj).__name__}, not an EnvEntry or an Env factory")


def register_env(name: str, make: Callable[..., Env], *, tasks: Callable[..., list[Task]] | None = None,
                 description: str = "", replace: bool = False,
                 task_data: type[BaseModel] | str | None = None) -> EnvEntry:
    return registry.register(EnvEntry(name, make, tasks, description, task_data), replace=replace)


def make(name: str, **config: Any) -> Env:
    """Make a fresh Env of the registered ``name``; ``config`` goes to its factory."""
    entry = registry.get(name)
    try:
        return entry.make(**config)
    except TypeError as exc:
        raise TypeError(f"env {name!r} does not accept this config ({sorted(config)}): {exc}") from exc


def load_tasks(name: str, **options: Any) -> list[Task]:
    """Tasks of the registered env ``name`` (``split``, ``n``, ``seed``, ``path``...)."""
    entry = registry.get(name)
    if entry.tasks is None:
        raise ValueError(f"env {name!r} has no task source: pass tasks from a JSONL file instead")
    return entry.tasks(**options)
