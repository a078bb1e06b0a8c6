import sys
import textwrap

import pytest

from traject.tools import Tool, ToolRegistry, Toolset, tool
from traject.tools.context import ToolContext
from traject.types import Task


class Notes(Toolset):
    """Per-episode notes."""

    def __init__(self) -> None:
        self.events: list[str] = []

    async def setup(self, ctx: ToolContext) -> None:
        self.notes: list[str] = []
        self.events.append("setup")

    async def teardown(self, ctx: ToolContext) -> None:
        self.events.append("teardown")

    @tool
    async def add_note(self, text: str) -> str:
        """Remember a note.

        Args:
            text: The note.
        """
        self.notes.append(text)
        return f"{len(self.notes)} notes"

    @tool
    def count(self) -> str:
        """How many notes."""
        return str(len(self.notes))


@pytest.mark.anyio
async def test_toolset_methods_bind_to_instance():
    a, b = Notes(), Notes()
    ctx = ToolContext(task=Task(id="t"), episode_id="e")
    await a.setup(ctx)
    await b.setup(ctx)
    tools_a = {t.name: t for t in a.tools()}
    assert set(tools_a) == {"add_note", "count"}
    assert list(tools_a["add_note"].parameters["properties"]) == ["text"]
    await tools_a["add_note"](ctx, {"text": "x"})
    assert (await tools_a["count"](ctx, {})).content == "1"
    assert (await b.tools()[1](ctx, {})).content == "0"


def test_registry_refuses_duplicates_and_junk():
    reg = ToolRegistry()
    reg._discovered = True

    @tool
    def ping() -> str:
        """Ping."""
        return "pong"

    reg.register(ping)
    reg.register(Notes)
    assert reg.names() == ["Notes", "ping"]
    with pytest.raises(ValueError, match="already registered"):
        reg.register(tool(lambda: "x", name="ping"))
    with pytest.raises(TypeError):
        reg.register(object())  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="registered tools: Notes, ping"):
        reg.get("nope")


def test_entry_point_plugins_are_discovered(tmp_path, monkeypatch):
    """A real installed distribution (a dist-info on sys.path) declaring traject.tools."""
    pkg = tmp_path / "my_tools_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent('''
        from traject.tools import tool, Toolset

        @tool
        def weather(city: str) -> str:
            """Weather for a city."""
            return f"sunny in {city}"

        class Kit(Toolset):
            @tool
            def hammer(self) -> str:
                """Hit."""
                return "bang"

        NOT_A_TOOL = 3
    '''))
    dist = tmp_path / "my_tools_pkg-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-tools-pkg\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[traject.tools]\nweather = my_tools_pkg:weather\nkit = my_tools_pkg:Kit\n"
        "broken = my_tools_pkg.missing:thing\njunk = my_tools_pkg:NOT_A_TOOL\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_tools_pkg", raising=False)
    reg = ToolRegistry()
    names = reg.names()
    assert {"weather", "kit"} <= set(names)
    assert "broken" not in names and "junk" not in names
    assert isinstance(reg.get("weather"), Tool)
    assert issubclass(reg.get("kit"), Toolset)
