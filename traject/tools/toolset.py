"""Toolsets: tools that share per-episode state, with set-up and tear-down.

>>> from traject.tools import Toolset, tool
>>> class Counter(Toolset):
...     async def setup(self, ctx):
...         self.n = 0
...     @tool
...     def bump(self) -> str:
...         '''Add one to the counter.'''
...         self.n += 1
...         return str(self.n)
>>> [t.name for t in Counter().tools()]
['bump']
"""

from __future__ import annotations

from traject.tools.base import Tool
from traject.tools.context import ToolContext


class Toolset:
    """A group of tools with state for one episode.

    An env makes a fresh instance per episode, awaits ``setup`` before the first step and
    ``teardown`` after the last (also when the episode fails or is cancelled).
    Methods decorated with ``@tool`` are the tools; override ``tools()`` for dynamic sets
    (an MCP server lists its tools at set-up).
    """

    async def setup(self, ctx: ToolContext) -> None:
        return None

    async def teardown(self, ctx: ToolContext) -> None:
        return None

    @classmethod
    def declared_tools(cls) -> list[Tool] | None:
        """The ``@tool`` methods, read from the class without making or setting up an instance;
        None when ``tools()`` is overridden (a set known only at set-up, such as MCP's)."""
        if cls.tools is not Toolset.tools:
            return None
        found: list[Tool] = []
        seen: set[str] = set()
        for klass in cls.__mro__:
            for attr, value in vars(klass).items():
                if attr not in seen and isinstance(value, Tool):
                    seen.add(attr)
                    found.append(value)
        return found

    def tools(self) -> list[Tool]:
        found: list[Tool] = []
        seen: set[str] = set()
        for klass in type(self).__mro__:
            for attr, value in vars(klass).items():
                if attr in seen or not isinstance(value, Tool):
                    continue
                seen.add(attr)
                found.append(getattr(self, attr))
        return found
