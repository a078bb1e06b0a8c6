from typing import Literal

import pytest
from pydantic import BaseModel

from traject.tools import ToolArgumentError, ToolContext, ToolOutput, tool
from traject.tools.decorator import parse_docstring
from traject.types import ImagePart, Task


class Point(BaseModel):
    x: int
    y: int


@tool
def search(query: str, k: int = 5, mode: Literal["bm25", "dense"] = "bm25", where: Point | None = None) -> str:
    """Search the corpus.

    Args:
        query: What to look for.
            May span lines.
        k: How many hits.
        mode: The retriever.
    """
    return f"{query}|{k}|{mode}|{where.x if where else None}"


@tool(name="ctx_tool", timeout_s=3)
async def with_ctx(ctx: ToolContext, n: int) -> ToolOutput:
    """Count calls in episode state."""
    ctx.state["n"] = ctx.state.get("n", 0) + n
    return ToolOutput(content=str(ctx.state["n"]), reward=0.5)


def _ctx() -> ToolContext:
    return ToolContext(task=Task(id="t"), episode_id="e")


def test_schema_in_openai_format():
    s = search.schema.to_openai()
    assert s["type"] == "function"
    fn = s["function"]
    assert fn["name"] == "search" and fn["description"] == "Search the corpus."
    props = fn["parameters"]["properties"]
    assert props["query"] == {"description": "What to look for. May span lines.", "type": "string"}
    assert props["k"]["type"] == "integer" and props["k"]["default"] == 5
    assert props["mode"]["enum"] == ["bm25", "dense"]
    assert fn["parameters"]["required"] == ["query"]
    assert "title" not in fn["parameters"]


def test_context_parameter_is_not_in_schema():
    assert list(with_ctx.parameters["properties"]) == ["n"]
    assert with_ctx.name == "ctx_tool" and with_ctx.timeout_s == 3


@pytest.mark.anyio
async def test_sync_tool_runs_with_validated_args():
    out = await search(_ctx(), {"query": "q", "k": "3", "where": {"x": 1, "y": 2}})
    assert out.content == "q|3|bm25|1"


@pytest.mark.anyio
async def test_async_tool_shares_episode_state():
    ctx = _ctx()
    await with_ctx(ctx, {"n": 2})
    out = await with_ctx(ctx, {"n": 3})
    assert out.content == "5" and out.reward == 0.5


@pytest.mark.anyio
@pytest.mark.parametrize(("args", "fragment"), [
    ({}, "missing required argument 'query'"),
    ({"query": "q", "k": "many"}, "argument 'k'"),
    ({"query": "q", "mode": "fuzzy"}, "argument 'mode'"),
    ({"query": "q", "bogus": 1}, "unexpected argument 'bogus'"),
    ({"query": "q", "where": {"x": 1}}, "where.y"),
])
async def test_bad_arguments_name_the_field(args, fragment):
    with pytest.raises(ToolArgumentError, match="invalid arguments for tool 'search'") as info:
        await search(_ctx(), args)
    assert fragment in str(info.value)


def test_sphinx_docstrings():
    desc, args = parse_docstring("""Do it.

    :param a: first
    :param int b: second
    """)
    assert desc == "Do it." and args == {"a": "first", "b": "second"}


def test_varargs_are_refused():
    with pytest.raises(TypeError, match="cannot be described"):
        tool(lambda *a: None)


@pytest.mark.anyio
async def test_output_coercion():
    @tool
    def image() -> ImagePart:
        """An image."""
        return ImagePart(data="aGk=")

    @tool(run_in_thread=False)
    def as_dict() -> dict:
        """A dict."""
        return {"a": [1, 2]}

    assert (await image(_ctx(), {})).content[0].data == "aGk="
    assert (await as_dict(_ctx(), {})).content == '{"a": [1, 2]}'
