"""Llama 3.x JSON tool calls: the whole reply is ``{"name": ..., "parameters": {...}}``.

Llama 3.1/3.2/3.3 write one JSON object as the entire message, sometimes after the
``<|python_tag|>`` token; several calls are separated by ``;``. Llama has no way to say
something *and* call a tool in one message, so this format writes prose before the tag:
``text<|python_tag|>{...}``; without the tag a message is a call only when it starts with a
JSON object naming one.

>>> f = Llama3JsonFormat()
>>> p = f.parse('{"name": "lookup", "parameters": {"item": "fig"}}')
>>> p.content, p.tool_calls[0].name, p.tool_calls[0].arguments
('', 'lookup', {'item': 'fig'})
>>> f.parse('{"answer": 5}').content      # JSON that names no tool is an answer
'{"answer": 5}'
>>> f.parse('<|python_tag|>{"name": "lookup", "parameters": {"item": ').tool_calls[0].error
'the tool call is not valid JSON: Expecting value at position 42'
>>> f.parse("{'name': 'lookup', 'parameters': {'item': 'fig'}}").tool_calls[0].error
'the tool call is not valid JSON: it uses single quotes; JSON needs straight double quotes (")'
"""

from __future__ import annotations

import json
import re

from traject.agents.parsers.base import JSONError, ParsedOutput, ToolCallFormat, call_from_json, decode_json_at
from traject.types import ToolCall, ToolSchema

PYTHON_TAG = "<|python_tag|>"
_QUOTES = "'\u2018\u2019\u201c\u201d\u201e\u201f\u2032\u2033"
# A "name" key in any quoting: a reply that opens with one is an attempt at a call, even when
# the quotes (single, smart) make it invalid JSON.
_NAME_KEY = re.compile(rf"""^\{{\s*["{_QUOTES}]name["{_QUOTES}]\s*:""")


class Llama3JsonFormat(ToolCallFormat):
    name = "llama3_json"

    def parse(self, text: str) -> ParsedOutput:
        tag = text.find(PYTHON_TAG)
        if tag != -1:
            return ParsedOutput(content=text[:tag].strip(), tool_calls=self._calls(text[tag + len(PYTHON_TAG):]))
        body = text.lstrip()
        if not body.startswith("{") or not _names_a_tool(body):
            return ParsedOutput(content=text.strip())
        return ParsedOutput(tool_calls=self._calls(body))

    def _calls(self, body: str) -> list[ToolCall]:
        calls: list[ToolCall] = []
        pos = _skip(body, 0)
        if pos == len(body):
            return [ToolCall(name="", raw=PYTHON_TAG + body, error=f"nothing follows {PYTHON_TAG}")]
        while pos < len(body):
            try:
                obj, end = decode_json_at(body, pos)
            except JSONError as exc:
                calls.append(ToolCall(name="", raw=body[pos:],
                                      error=f"the tool call is not valid JSON: {_quote_hint(body[pos:]) or exc}"))
                break
            calls.append(call_from_json(obj, body[pos:end], arguments_key="parameters"))
            pos = _skip(body, end)
            if pos < len(body) and body[pos] == ";":
                pos = _skip(body, pos + 1)
            elif pos < len(body):
                calls.append(ToolCall(name="", raw=body[pos:],
                                      error="tool calls must be separated by ';' and nothing may follow them"))
                break
        return calls

    def render_calls(self, content: str, calls: list[ToolCall]) -> str:
        if not calls:
            return content
        body = "; ".join(c.raw if c.error is not None and c.raw is not None else
                         json.dumps({"name": c.name, "parameters": c.arguments}, ensure_ascii=False)
                         for c in calls)
        return f"{content}{PYTHON_TAG}{body}" if content else body

    def render_tools(self, tools: list[ToolSchema]) -> str:
        sigs = "\n\n".join(json.dumps(t.to_openai(), ensure_ascii=False) for t in tools)
        return ("Given the following functions, please respond with a JSON for a function call with its "
                "proper arguments that best answers the given prompt.\n\n"
                'Respond in the format {"name": function name, "parameters": dictionary of argument name '
                "and its value}. Do not use variables.\n\n" + sigs)

    def render_result(self, name: str, content: str) -> str:
        return content


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _names_a_tool(body: str) -> bool:
    """Whether a reply opening with ``{`` is an attempt at a call (so a broken one is a format
    error) rather than a JSON answer."""
    if _NAME_KEY.match(body):
        return True
    try:
        obj, _ = decode_json_at(body, 0)
    except JSONError:
        return '"name"' in body
    return isinstance(obj, dict) and "name" in obj


def _quote_hint(body: str) -> str | None:
    """Why a call in the wrong quotes fails, in words a model can act on."""
    opening = re.match(rf"\{{\s*([{_QUOTES}])", body)
    if opening is None:
        return None
    kind = "single" if opening.group(1) == "'" else "typographic (smart)"
    return f'it uses {kind} quotes; JSON needs straight double quotes (")'
