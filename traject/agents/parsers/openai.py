"""OpenAI structured tool calls: the chat API's ``tool_calls`` JSON, both ways.

The "text" of this format is the JSON of an API assistant message (``{"role": "assistant",
"content": ..., "tool_calls": [...]}``) or a bare ``tool_calls`` list; a reply without calls is
plain text. :meth:`OpenAIFormat.to_api` and :meth:`OpenAIFormat.from_api` convert calls to and
from the API's objects (dicts, or the ``openai`` SDK's models), ids included.

>>> f = OpenAIFormat()
>>> api = [{"id": "call_1", "type": "function",
...         "function": {"name": "lookup", "arguments": '{"item": "fig"}'}}]
>>> c = f.from_api(api)[0]
>>> c.id, c.name, c.arguments
('call_1', 'lookup', {'item': 'fig'})
>>> f.to_api([c]) == api
True
>>> f.from_api([{"function": {"name": "lookup", "arguments": "{oops"}}])[0].error
'the arguments are not valid JSON: Expecting property name enclosed in double quotes at position 1'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from traject.agents.parsers.base import (JSONError, ParsedOutput, ToolCallFormat, encodable, loads_json,
                                         make_call)
from traject.types import ToolCall


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)


class OpenAIFormat(ToolCallFormat):
    name = "openai"

    def to_api(self, calls: list[ToolCall]) -> list[dict[str, Any]]:
        """The API's ``tool_calls`` list; a botched call goes back as the text the model wrote."""
        return [{"id": c.id, "type": "function",
                 "function": {"name": c.name,
                              "arguments": c.raw if c.error is not None and c.raw is not None
                              else json.dumps(c.arguments, ensure_ascii=False)}}
                for c in calls]

    def from_api(self, tool_calls: Any) -> list[ToolCall]:
        if not isinstance(tool_calls, list):
            return [ToolCall(name="", raw=_dump(tool_calls), error="'tool_calls' must be a list")]
        return [self._call(c) for c in tool_calls]

    def _call(self, c: Any) -> ToolCall:
        call_id = _get(c, "id")
        call_id = call_id if isinstance(call_id, str) and call_id and encodable(call_id) else None
        extra: dict[str, Any] = {"id": call_id} if call_id else {}
        fn = _get(c, "function")
        name = _get(fn, "name") if fn is not None else None
        raw = _get(fn, "arguments") if fn is not None else None
        if not isinstance(name, str) or not name or not encodable(name):
            return ToolCall(name="", raw=_dump(c), error="the tool call has no function name", **extra)
        if isinstance(raw, Mapping):
            return make_call(name, dict(raw), None, id=call_id)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return make_call(name, {}, None, id=call_id)
        if not isinstance(raw, str):
            return ToolCall(name=name, raw=_dump(raw), error="the arguments must be a JSON object", **extra)
        try:
            args = loads_json(raw)
        except JSONError as exc:
            return ToolCall(name=name, raw=raw, error=f"the arguments are not valid JSON: {exc}", **extra)
        if not isinstance(args, dict):
            return ToolCall(name=name, raw=raw, error="the arguments must be a JSON object", **extra)
        return make_call(name, args, None, id=call_id)

    def parse(self, text: str) -> ParsedOutput:
        stripped = text.strip()
        if not stripped.startswith(("{", "[")):
            return ParsedOutput(content=stripped)
        try:
            obj = loads_json(stripped)
        except JSONError as exc:
            if '"tool_calls"' in stripped or '"function"' in stripped:
                return ParsedOutput(tool_calls=[ToolCall(name="", raw=stripped,
                                                         error=f"the tool_calls JSON is not valid: {exc}")])
            return ParsedOutput(content=stripped)
        if isinstance(obj, list) and obj and all(isinstance(c, dict) and "function" in c for c in obj):
            return ParsedOutput(tool_calls=self.from_api(obj))
        if not isinstance(obj, dict) or not ({"tool_calls", "role"} & obj.keys()):
            return ParsedOutput(content=stripped)
        content = obj.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
        content = content.strip() if isinstance(content, str) and encodable(content) else ""
        calls = obj.get("tool_calls")
        return ParsedOutput(content=content, tool_calls=self.from_api(calls) if calls is not None else [])

    def render_calls(self, content: str, calls: list[ToolCall]) -> str:
        if not calls:
            return content
        return json.dumps({"role": "assistant", "content": content or None, "tool_calls": self.to_api(calls)},
                          ensure_ascii=False)

    def render_result(self, name: str, content: str) -> str:
        return content


def _dump(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError, RecursionError):
        return repr(value)
