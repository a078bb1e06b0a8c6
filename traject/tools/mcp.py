"""MCP servers as toolsets: an MCP server's tools, listed and called like native ones.

Needs the ``mcp`` extra (the official SDK, 2.x)::

    env = ToolEnv([MCPToolset(command="python", args=["my_server.py"])])
    env = ToolEnv([MCPToolset(url="http://127.0.0.1:8000/mcp")])

Each episode opens its own connection (for stdio, its own server process), so server-side
state never leaks between episodes. A server that cannot be reached, or dies mid-episode, is
an InfraError; a tool the server reports as failed is an error observation.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from traject.tools.base import Tool, ToolArgumentError, ToolOutput
from traject.tools.context import ToolContext
from traject.tools.toolset import Toolset
from traject.types import ContentPart, ImagePart, InfraError, TextPart


def _import_mcp() -> Any:
    try:
        import mcp
    except ImportError as exc:
        raise ImportError("MCP toolsets need the 'mcp' extra: pip install 'traject[mcp]'") from exc
    return mcp


class MCPServerConfig(BaseModel):
    """How to reach one MCP server: a command to spawn (stdio) or a URL (streamable HTTP)."""

    model_config = ConfigDict(extra="forbid")

    command: str | None = None
    args: list[str] = []
    env: dict[str, str] | None = None
    cwd: str | None = None
    url: str | None = None
    prefix: str = ""
    call_timeout_s: float = 60.0
    connect_timeout_s: float = 30.0

    @model_validator(mode="after")
    def _one_transport(self) -> MCPServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("an MCP server needs exactly one of `command` (stdio) or `url` (streamable HTTP)")
        return self


class MCPTool(Tool):
    def __init__(self, toolset: MCPToolset, remote_name: str, description: str, schema: dict[str, Any]) -> None:
        self.toolset = toolset
        self.remote_name = remote_name
        self.name = toolset.config.prefix + remote_name
        self.description = description
        self.parameters = schema or {"type": "object", "properties": {}}
        self.timeout_s = toolset.config.call_timeout_s

    def validate_arguments(self, arguments: dict[str, Any]) -> dict[str, Any]:
        # The server validates fully; catch what the schema states plainly, for a clear message.
        missing = [k for k in self.parameters.get("required", []) if k not in arguments]
        if missing:
            raise ToolArgumentError(f"invalid arguments for tool '{self.name}': missing required argument "
                                    + ", ".join(f"'{k}'" for k in missing))
        props = self.parameters.get("properties")
        if isinstance(props, dict) and self.parameters.get("additionalProperties") is False:
            extra = [k for k in arguments if k not in props]
            if extra:
                raise ToolArgumentError(f"invalid arguments for tool '{self.name}': unexpected argument '{extra[0]}'")
        return arguments

    async def __call__(self, ctx: ToolContext, arguments: dict[str, Any]) -> ToolOutput:
        args = self.validate_arguments(arguments)
        session = self.toolset.session
        if session is None:
            raise InfraError(f"MCP tool {self.name!r} called outside an episode")
        try:
            result = await session.call_tool(self.remote_name, args)
        except Exception as exc:  # noqa: BLE001 - sorted below
            mcp = _import_mcp()
            if isinstance(exc, getattr(mcp, "MCPError", getattr(mcp, "McpError", ()))):
                return ToolOutput(content=f"MCP error: {exc}", is_error=True)
            raise InfraError(f"MCP server for tool {self.name!r} failed: {type(exc).__name__}: {exc}") from exc
        parts = _content_parts(getattr(result, "content", []) or [])
        if not parts and getattr(result, "structured_content", None) is not None:
            import json

            parts = [TextPart(text=json.dumps(result.structured_content))]
        content: str | list[ContentPart] = parts[0].text if len(parts) == 1 and isinstance(parts[0], TextPart) else parts
        return ToolOutput(content=content, is_error=bool(getattr(result, "is_error", False)))


def _content_parts(blocks: list[Any]) -> list[ContentPart]:
    parts: list[ContentPart] = []
    for b in blocks:
        kind = getattr(b, "type", None)
        if kind == "text":
            parts.append(TextPart(text=b.text))
        elif kind == "image":
            parts.append(ImagePart(data=b.data, mime_type=getattr(b, "mime_type", None) or "image/png"))
        else:
            parts.append(TextPart(text=f"[{kind} content]"))
    return parts


class MCPToolset(Toolset):
    def __init__(self, config: MCPServerConfig | None = None, **kwargs: Any) -> None:
        self.config = config or MCPServerConfig(**kwargs)
        self.session: Any = None
        self._stack: AsyncExitStack | None = None
        self._stop: Any = None
        self._stopped: Any = None
        self._tools: list[Tool] = []

    async def setup(self, ctx: ToolContext) -> None:
        _import_mcp()
        from traject.episode import service_group

        tg = service_group()
        if tg is None:
            # Outside the agent loop: the caller keeps set-up and tear-down strictly nested.
            self._stack = AsyncExitStack()
            await self._connect(self._stack)
            return
        import anyio

        self._stop = anyio.Event()
        self._stopped = anyio.Event()
        await tg.start(self._serve)

    async def _serve(self, *, task_status: Any) -> None:
        try:
            async with AsyncExitStack() as stack:
                await self._connect(stack)
                task_status.started()
                assert self._stop is not None
                await self._stop.wait()
        finally:
            self.session = None
            if self._stopped is not None:
                self._stopped.set()

    async def _connect(self, stack: AsyncExitStack) -> None:
        mcp = _import_mcp()
        import anyio

        try:
            # The transports open task groups: enter them outside any timeout scope, and time
            # out only the handshake.
            if self.config.command is not None:
                from mcp.client.stdio import stdio_client

                params = mcp.StdioServerParameters(command=self.config.command, args=self.config.args,
                                                   env=self.config.env, cwd=self.config.cwd)
                streams = await stack.enter_async_context(stdio_client(params))
            else:
                from mcp.client import streamable_http

                client = getattr(streamable_http, "streamable_http_client", None) or streamable_http.streamablehttp_client
                streams = await stack.enter_async_context(client(self.config.url))
            session = await stack.enter_async_context(mcp.ClientSession(streams[0], streams[1]))
            with anyio.fail_after(self.config.connect_timeout_s):
                await session.initialize()
                listed = await session.list_tools()
        except Exception as exc:
            where = self.config.url or " ".join([self.config.command or "", *self.config.args])
            raise InfraError(f"could not start the MCP server ({where}): {type(exc).__name__}: {exc}") from exc
        self.session = session
        self._tools = [MCPTool(self, t.name, t.description or "", dict(t.input_schema or {}))
                       for t in listed.tools]

    async def teardown(self, ctx: ToolContext) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            self.session = None
            await stack.aclose()
        if self._stop is not None:
            self._stop.set()
            assert self._stopped is not None
            await self._stopped.wait()
            self._stop = self._stopped = None

    def tools(self) -> list[Tool]:
        return list(self._tools)
