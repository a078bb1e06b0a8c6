"""Hermes / Qwen: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks.

>>> f = HermesFormat()
>>> p = f.parse('Sure.\\n<tool_call>\\n{"name": "lookup", "arguments": {"item": "fig"}}\\n</tool_call>')
>>> p.content, p.tool_calls[0].name, p.tool_calls[0].arguments
('Sure.', 'lookup', {'item': 'fig'})
>>> f.parse(f.render_calls(p.content, p.tool_calls)).tool_calls[0].arguments
{'item': 'fig'}
>>> f.parse('<tool_call>{"name": "lookup", "arguments": {"item": </tool_call>').tool_calls[0].error
'the <tool_call> block is not valid JSON: Expecting value at position 41'
"""

from __future__ import annotations

import json

from traject.agents.parsers.base import JSONError, ParsedOutput, ToolCallFormat, call_from_json, decode_json_at
from traject.types import ToolCall, ToolSchema

_OPEN, _CLOSE = "<tool_call>", "</tool_call>"


class HermesFormat(ToolCallFormat):
    name = "hermes"

    def parse(self, text: str) -> ParsedOutput:
        calls: list[ToolCall] = []
        pieces: list[str] = []
        pos = 0
        while (start := text.find(_OPEN, pos)) != -1:
            pieces.append(text[pos:start])
            body = start + len(_OPEN)
            call, pos = self._block(text, start, body)
            calls.append(call)
        pieces.append(text[pos:])
        return ParsedOutput(content="".join(pieces).strip(), tool_calls=calls)

    def _block(self, text: str, start: int, body: int) -> tuple[ToolCall, int]:
        """The call of the block opening at ``start``, and where the block ends. The JSON is
        decoded in place, so a string argument may itself contain the closing tag."""
        try:
            obj, end = decode_json_at(text, body)
            after = len(text[end:]) - len(text[end:].lstrip())
            if text.startswith(_CLOSE, end + after):
                stop = end + after + len(_CLOSE)
                return call_from_json(obj, text[start:stop]), stop
            problem = (f"the JSON is not followed by {_CLOSE}" if text[end:].strip()
                       else f"a {_OPEN} block is not closed with {_CLOSE}")
        except JSONError as exc:
            problem = f"the {_OPEN} block is not valid JSON: {exc}"
        close = text.find(_CLOSE, body)
        stop = len(text) if close == -1 else close + len(_CLOSE)
        if close == -1 and problem.startswith(f"the {_OPEN} block is not valid"):
            problem = f"a {_OPEN} block is not closed with {_CLOSE} ({problem})"
        return ToolCall(name="", raw=text[start:stop], error=problem), stop

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
