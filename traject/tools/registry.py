"""Named tools, and plugin discovery through the ``traject.tools`` entry-point group.

A plugin package declares, in its pyproject.toml::

    [project.entry-points."traject.tools"]
    weather = "my_pkg.tools:get_weather"      # a Tool (e.g. a @tool function)
    browser = "my_pkg.tools:BrowserTools"      # or a Toolset subclass

and ``traject.tools.get_tool("weather")`` finds it.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import Union

from traject.tools.base import Tool
from traject.tools.toolset import Toolset

ENTRY_POINT_GROUP = "traject.tools"
log = logging.getLogger(__name__)

ToolProvider = Union[Tool, type[Toolset]]


class ToolRegistry:
    def __init__(self) -> None:
        self._items: dict[str, ToolProvider] = {}
        self._discovered = False

    def register(self, provider: ToolProvider, name: str | None = None, *, replace: bool = False) -> ToolProvider:
        if not (isinstance(provider, Tool) or (isinstance(provider, type) and issubclass(provider, Toolset))):
            raise TypeError(f"can only register a Tool or a Toolset subclass, not {provider!r}")
        key = name or (provider.name if isinstance(provider, Tool) else provider.__name__)
        if key in self._items and self._items[key] is not provider and not replace:
            raise ValueError(f"a tool named {key!r} is already registered ({self._items[key]!r}); "
                             "pass replace=True to override it")
        self._items[key] = provider
        return provider

    def discover(self) -> None:
        """Load every ``traject.tools`` entry point once. A plugin that fails to load is logged
        and skipped, so one broken plugin cannot take the others down."""
        if self._discovered:
            return
        self._discovered = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                obj = ep.load()
            except Exception as exc:  # noqa: BLE001 - a plugin's import error must not kill us
                log.warning("tool plugin %r (%s) failed to load: %s", ep.name, ep.value, exc)
                continue
            try:
                self.register(obj, ep.name)
            except (TypeError, ValueError) as exc:
                log.warning("tool plugin %r (%s) is not usable: %s", ep.name, ep.value, exc)

    def get(self, name: str) -> ToolProvider:
        self.discover()
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise KeyError(f"no tool named {name!r}; registered tools: {known}") from None

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._items)

    def items(self) -> dict[str, ToolProvider]:
        self.discover()
        return dict(self._items)


registry = ToolRegistry()
register_tool = registry.register
get_tool = registry.get
