"""The tool-call format contract: how a model writes tool calls in text, both ways.

A format renders tools into a prompt, renders calls as the model would write them, and
parses model text back. ``parse`` never raises: text that looks like a call but does not
parse becomes a ToolCall with ``error`` set, which the env answers with an error observation.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from traject.types import ToolCall, ToolSchema


class ParsedOutput(BaseModel):
    """What a format read from one reply. Always serialisable: a lone surrogate in the model's
    text (which UTF-8 cannot carry) becomes U+FFFD in ``content`` and in each call's ``raw``."""

    model_config = ConfigDict(extra="forbid")

    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)

    @field_validator("content")
    @classmethod
    def _scrub_content(cls, value: str) -> str:
        return scrub_surrogates(value)

    @field_validator("tool_calls")
    @classmethod
    def _scrub_calls(cls, calls: list[ToolCall]) -> list[ToolCall]:
        return [c if all(encodable(v) for v in (c.raw or "", c.error or "", c.name, c.id))
                else c.model_copy(update={"raw": None if c.raw is None else scrub_surrogates(c.raw),
                                          "error": None if c.error is None else scrub_surrogates(c.error),
                                          "name": scrub_surrogates(c.name), "id": scrub_surrogates(c.id)})
                for c in calls]

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


class JSONError(ValueError):
    """Text that is not the JSON a tool call needs; the message says why, for the model."""


def _reject_constant(name: str) -> Any:
    raise JSONError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def loads_json(text: str) -> Any:
    """Strict ``json.loads``: no NaN/Infinity, and every failure (deep nesting included) is a
    JSONError with a message a model can act on."""
    value, end = decode_json_at(text, 0, skip_space=True)
    rest = text[end:].strip()
    if rest:
        raise JSONError(f"extra text after the JSON value at position {end}: {rest[:40]!r}")
    return value


def decode_json_at(text: str, pos: int, *, skip_space: bool = True) -> tuple[Any, int]:
    """Decode one JSON value starting at ``pos``; return it and the index just after it."""
    if skip_space:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
    try:
        return _DECODER.raw_decode(text, pos)
    except JSONError:
        raise
    except json.JSONDecodeError as exc:
        raise JSONError(f"{exc.msg} at position {exc.pos - pos}") from None
    except RecursionError:
        raise JSONError("the JSON is nested too deeply") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise JSONError(str(exc)) from None


def encodable(text: str) -> bool:
    """Whether ``text`` is valid Unicode that can be written as UTF-8 (no unpaired surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def scrub_surrogates(text: str) -> str:
    """``text`` with every unpaired surrogate replaced by U+FFFD (a split pair is rejoined).

    >>> scrub_surrogates("a\\ud800b") == "a\\ufffdb"
    True
    """
    if encodable(text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def make_call(name: str, arguments: Any, raw: str | None, *, id: str | None = None) -> ToolCall:
    """A valid ToolCall, or an error call when ``arguments`` could not travel as JSON (not an
    object, unpaired surrogates, NaN, nesting too deep for the trajectory's JSON)."""
    extra: dict[str, Any] = {"id": id} if id else {}
    if not isinstance(arguments, dict):
        return ToolCall(name=name, raw=raw, error="the arguments must be a JSON object", **extra)
    try:
        json.dumps([name, arguments], ensure_ascii=False, allow_nan=False).encode("utf-8")
        return ToolCall(name=name, arguments=arguments, raw=raw, **extra)
    except (ValueError, TypeError, RecursionError, ValidationError) as exc:
        reason = "the JSON is nested too deeply" if isinstance(exc, (RecursionError, ValidationError)) \
            else f"the call cannot be stored as JSON ({exc})"
        return ToolCall(name="", raw=raw, error=reason, **extra)


def call_from_json(obj: Any, raw: str, *, arguments_key: str = "arguments") -> ToolCall:
    """A ToolCall from a decoded ``{"name": ..., "arguments": {...}}`` object (``"parameters"``
    is accepted too); anything else becomes an error call that says what was expected."""
    if not isinstance(obj, dict):
        return ToolCall(name="", raw=raw,
                        error=f"a tool call must be a JSON object with 'name' and '{arguments_key}'")
    name = obj.get("name")
    args = obj.get("arguments", obj.get("parameters", {}))
    if not isinstance(name, str) or not name or not encodable(name):
        return ToolCall(name="", error="the tool call has no 'name' string", raw=raw)
    if isinstance(args, str):
        try:
            args = loads_json(args) if args.strip() else {}
        except JSONError as exc:
            return ToolCall(name=name, raw=raw, error=f"the arguments are not valid JSON: {exc}")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return ToolCall(name=name, error=f"'{arguments_key}' must be a JSON object", raw=raw)
    return make_call(name, args, raw)


def dumps_arguments(args: dict[str, Any]) -> str:
    return json.dumps(args, ensure_ascii=False)
