"""The tool-call format contract: how a model writes tool calls in text, both ways.

A format renders tools into a prompt, renders calls as the model would write them, and
parses model text back. ``parse`` never raises: text that looks like a call but does not
parse becomes a ToolCall with ``error`` set, which the env answers with an error observation.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from traject.types import ToolCall, ToolSchema


class ParsedOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)

    @property
    def format_errors(self) -> int:
        return sum(1 for c in self.tool_calls if c.error is not None)


class ToolCallFormat(ABC):
    name: ClassVar[str]

    @abstractmethod
    def parse(self, text: str) -> ParsedOutput: ...

    @abstractmethod
    def render_calls(self, content: str, calls: list[ToolCall]) -> str:
        """The assistant text that ``parse`` turns back into (content, calls)."""

    def render_tools(self, tools: list[ToolSchema]) -> str:
        """Instructions listing the tools, for a system prompt (prompt-rendered mode)."""
        lines = ["You may call tools. The available tools, as JSON schemas:"]
        lines += [json.dumps(t.to_openai()["function"], ensure_ascii=False) for t in tools]
        return "\n".join(lines)

    def render_result(self, name: str, content: str) -> str:
        """A tool result as text, for templates or APIs without a tool role."""
        return f"<tool_response>\n{content}\n</tool_response>"


def call_from_json(obj: Any, raw: str) -> ToolCall:
    """A ToolCall from a decoded ``{"name": ..., "arguments": {...}}`` object; anything else
    becomes an error call that says what was expected."""
    if not isinstance(obj, dict):
        return ToolCall(name="", error="a tool call must be a JSON object with 'name' and 'arguments'", raw=raw)
    name = obj.get("name")
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as exc:
            return ToolCall(name=name if isinstance(name, str) else "", raw=raw,
                            error=f"the arguments are not valid JSON: {exc.msg} at position {exc.pos}")
    if not isinstance(name, str) or not name:
        return ToolCall(name="", error="the tool call has no 'name' string", raw=raw)
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return ToolCall(name=name, error="'arguments' must be a JSON object", raw=raw)
    return ToolCall(name=name, arguments=args, raw=raw)
