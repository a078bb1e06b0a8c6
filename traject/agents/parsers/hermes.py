"""Hermes / Qwen: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks.

>>> f = HermesFormat()
>>> p = f.parse('Sure.\\n<tool_call>\\n{"name": "lookup", "arguments": {"item": "fig"}}\\n</tool_call>')
>>> p.content, p.tool_calls[0].name, p.tool_calls[0].arguments
('Sure.', 'lookup', {'item': 'fig'})
>>> f.parse(f.render_calls(p.content, p.tool_calls)).tool_calls[0].arguments
{'item': 'fig'}
"""

from __future__ import annotations

import json
import re

from traject.agents.parsers.base import ParsedOutput, ToolCallFormat, call_from_json
from traject.types import ToolCall, ToolSchema

_OPEN, _CLOSE = "<tool_call>", "</tool_call>"
_BLOCK = re.compile(r"<tool_call>(.*?)(</tool_call>|$)", re.DOTALL)


class HermesFormat(ToolCallFormat):
    name = "hermes"

    def parse(self, text: str) -> ParsedOutput:
        calls: list[ToolCall] = []
        pieces: list[str] = []
        pos = 0
        for m in _BLOCK.finditer(text):
            pieces.append(text[pos:m.start()])
            pos = m.end()
            body, closed = m.group(1), bool(m.group(2))
            raw = m.group(0)
            if not closed:
                calls.append(ToolCall(name="", raw=raw, error=f"a {_OPEN} block is not closed with {_CLOSE}"))
                continue
            try:
                obj = json.loads(body)
            except json.JSONDecodeError as exc:
                calls.append(ToolCall(name="", raw=raw, error=f"the {_OPEN} block is not valid JSON: "
                                      f"{exc.msg} at position {exc.pos}"))
                continue
            calls.append(call_from_json(obj, raw))
        pieces.append(text[pos:])
        return ParsedOutput(content="".join(pieces).strip(), tool_calls=calls)

    def render_calls(self, content: str, calls: list[ToolCall]) -> str:
        blocks = [c.raw if c.error is not None and c.raw is not None else
                  f"{_OPEN}\n{json.dumps({'name': c.name, 'arguments': c.arguments}, ensure_ascii=False)}\n{_CLOSE}"
                  for c in calls]
        return "\n".join([content, *blocks] if content else blocks)

    def render_tools(self, tools: list[ToolSchema]) -> str:
        sigs = "\n".join(json.dumps(t.to_openai(), ensure_ascii=False) for t in tools)
        return ("# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
                "You are provided with function signatures within <tools></tools> XML tags:\n"
                f"<tools>\n{sigs}\n</tools>\n\n"
                "For each function call, return a json object with function name and arguments within "
                '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, '
                '"arguments": <args-json-object>}\n</tool_call>')
