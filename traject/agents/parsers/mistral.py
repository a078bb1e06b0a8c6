"""Mistral: ``[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]`` after any prose.

>>> f = MistralFormat()
>>> p = f.parse('Checking.[TOOL_CALLS][{"name": "lookup", "arguments": {"item": "fig"}}]')
>>> p.content, [(c.name, c.arguments) for c in p.tool_calls]
('Checking.', [('lookup', {'item': 'fig'})])
>>> f.parse('[TOOL_CALLS][{"name": "lookup", "arguments": {"item": "fig"}}').tool_calls[0].error
"the [TOOL_CALLS] list is not valid JSON: Expecting ',' delimiter at position 49"
"""

from __future__ import annotations

import json

from traject.agents.parsers.base import JSONError, ParsedOutput, ToolCallFormat, call_from_json, decode_json_at
from traject.types import ToolCall, ToolSchema

TAG = "[TOOL_CALLS]"


class MistralFormat(ToolCallFormat):
    name = "mistral"

    def parse(self, text: str) -> ParsedOutput:
        first = text.find(TAG)
        if first == -1:
            return ParsedOutput(content=text.strip())
        content = [text[:first]]
        calls: list[ToolCall] = []
        pos = first
        while pos != -1:
            nxt = text.find(TAG, pos + len(TAG))
            segment_end = len(text) if nxt == -1 else nxt
            body = pos + len(TAG)
            try:
                obj, end = decode_json_at(text, body)
            except JSONError as exc:
                calls.append(ToolCall(name="", raw=text[pos:segment_end],
                                      error=f"the {TAG} list is not valid JSON: {exc}"))
                pos = nxt
                continue
            if end > segment_end:  # the JSON swallowed a later tag inside a string: keep it whole
                nxt = text.find(TAG, end)
                segment_end = len(text) if nxt == -1 else nxt
            calls.extend(_calls(obj, text[pos:end]))
            content.append(text[end:segment_end])
            pos = nxt
        return ParsedOutput(content="".join(content).strip(), tool_calls=calls)

    def render_calls(self, content: str, calls: list[ToolCall]) -> str:
        good = [{"name": c.name, "arguments": c.arguments} for c in calls if c.error is None]
        out = content
        if good:
            out += TAG + json.dumps(good, ensure_ascii=False)
        out += "".join(c.raw for c in calls if c.error is not None and c.raw is not None)
        return out

    def render_tools(self, tools: list[ToolSchema]) -> str:
        return f"[AVAILABLE_TOOLS]{json.dumps([t.to_openai() for t in tools], ensure_ascii=False)}[/AVAILABLE_TOOLS]"

    def render_result(self, name: str, content: str) -> str:
        return f"[TOOL_RESULTS]{json.dumps({'name': name, 'content': content}, ensure_ascii=False)}[/TOOL_RESULTS]"


def _calls(obj: object, raw: str) -> list[ToolCall]:
    items = obj if isinstance(obj, list) else [obj]
    if not items:
        return [ToolCall(name="", raw=raw, error=f"the {TAG} list is empty")]
    out = []
    for item in items:
        item_raw = raw if len(items) == 1 else TAG + json.dumps([item], ensure_ascii=False)
        call = call_from_json(item, item_raw)
        if call.error is None:
            call = call.model_copy(update={"raw": None})
            if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]:
                call = call.model_copy(update={"id": item["id"]})
        out.append(call)
    return out
