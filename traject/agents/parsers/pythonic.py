"""Pythonic tool calls (Llama 3.2 / Llama 4): ``[lookup(item="fig"), submit(answer=7)]``.

The list is read with :mod:`ast`, never evaluated: only keyword arguments whose values are
literals (strings, numbers, booleans, None, and lists/tuples/dicts of them) are calls; a
positional argument, a variable, an expression or a syntax error is a format error.

A call list is the rest of the message from a line that opens with ``[name(``, or what sits
between ``<|python_start|>`` and ``<|python_end|>``; text before it is the content.

>>> f = PythonicFormat()
>>> p = f.parse('[lookup(item="fig"), submit(answer=7)]')
>>> [(c.name, c.arguments) for c in p.tool_calls]
[('lookup', {'item': 'fig'}), ('submit', {'answer': 7})]
>>> f.parse('[submit(answer=3 + 4)]').tool_calls[0].error
"argument 'answer' of submit() must be a literal value, not an expression"
>>> f.render_calls("", [p.tool_calls[0]])
"[lookup(item='fig')]"
"""

from __future__ import annotations

import ast
import json
import keyword
import math
import re
import unicodedata
import warnings
from typing import Any

from traject.agents.parsers.base import ParsedOutput, ToolCallFormat, make_call
from traject.types import ToolCall, ToolSchema

START, END = "<|python_start|>", "<|python_end|>"
_LIST_LINE = re.compile(r"^[ \t]*\[\s*[A-Za-z_][\w.]*\s*\(", re.MULTILINE)


class _NotLiteral(ValueError):
    pass


class PythonicFormat(ToolCallFormat):
    name = "pythonic"

    def parse(self, text: str) -> ParsedOutput:
        start = text.find(START)
        if start != -1:
            end = text.find(END, start)
            body = text[start + len(START): end if end != -1 else len(text)]
            rest = text[end + len(END):] if end != -1 else ""
            return ParsedOutput(content=(text[:start] + rest).strip(), tool_calls=self._calls(body))
        m = _LIST_LINE.search(text)
        if m is None:
            return ParsedOutput(content=text.strip())
        return ParsedOutput(content=text[:m.start()].strip(), tool_calls=self._calls(text[m.start():]))

    def _calls(self, body: str) -> list[ToolCall]:
        source = body.strip()
        try:
            tree = _parse(source)
        except SyntaxError as exc:
            return [ToolCall(name="", raw=source, error=f"the call list is not valid Python: {exc.msg}")]
        except (ValueError, RecursionError, MemoryError) as exc:
            return [ToolCall(name="", raw=source, error=f"the call list is not valid Python: {exc}")]
        if not isinstance(tree.body, ast.List):
            return [ToolCall(name="", raw=source, error="tool calls must be a Python list: [name(arg=value), ...]")]
        if not tree.body.elts:
            return [ToolCall(name="", raw=source, error="the call list is empty")]
        return [_call(elt, ast.get_source_segment(source, elt) or "") for elt in tree.body.elts]

    def render_calls(self, content: str, calls: list[ToolCall]) -> str:
        # A botched element goes back into the list as written; a botched list stands alone.
        elements = [_render_call(c) if c.error is None else c.raw for c in calls
                    if c.error is None or (c.raw is not None and _is_element(c.raw))]
        parts = [content] if content else []
        if elements:
            parts.append("[" + ", ".join(e for e in elements if e is not None) + "]")
        parts += [c.raw for c in calls if c.error is not None and c.raw is not None and not _is_element(c.raw)]
        return "\n".join(parts)

    def render_tools(self, tools: list[ToolSchema]) -> str:
        sigs = json.dumps([t.to_openai()["function"] for t in tools], ensure_ascii=False, indent=2)
        return ("You can call functions. To call them, reply with a Python list of calls with keyword "
                "arguments and literal values only:\n[func_name1(param1=value1, param2=value2), func_name2(...)]\n"
                "Write nothing else on the lines of the call list.\n\n"
                f"The functions, as JSON schemas:\n{sigs}")


def _parse(source: str) -> ast.Expression:
    with warnings.catch_warnings():  # the model's bad escapes are its business, not a warning of ours
        warnings.simplefilter("ignore")
        return ast.parse(source, mode="eval")


def _is_element(raw: str) -> bool:
    try:
        tree = _parse(raw.strip())
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return not isinstance(tree.body, ast.List)


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _call(node: ast.expr, raw: str) -> ToolCall:
    if not isinstance(node, ast.Call):
        return ToolCall(name="", raw=raw, error="each element of the call list must be a call: name(arg=value)")
    name = _dotted(node.func)
    if name is None:
        return ToolCall(name="", raw=raw, error="a tool must be called by its name: name(arg=value)")
    if node.args:
        return ToolCall(name=name, raw=raw, error=f"{name}() got a positional argument; "
                        "pass every argument by name: name(arg=value)")
    arguments: dict[str, Any] = {}
    for kw in node.keywords:
        try:
            if kw.arg is None:
                value = _literal(kw.value)
                if not isinstance(value, dict):
                    raise _NotLiteral("** needs a dict literal")
                items = list(value.items())
            else:
                items = [(kw.arg, _literal(kw.value))]
        except _NotLiteral as exc:
            what = f"argument {kw.arg!r}" if kw.arg else "a ** argument"
            return ToolCall(name=name, raw=raw, error=f"{what} of {name}() {exc}")
        for key, value in items:
            if key in arguments:
                return ToolCall(name=name, raw=raw, error=f"{name}() got argument {key!r} twice")
            arguments[key] = value
    return make_call(name, arguments, raw)


def _literal(node: ast.expr) -> Any:
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise _NotLiteral("must be a literal value, not an expression") from None
    return _to_json(value)


def _to_json(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NotLiteral("must be a finite number")
        return value
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise _NotLiteral("has a dict key that is not a string")
        return {k: _to_json(v) for k, v in value.items()}
    raise _NotLiteral(f"has a {type(value).__name__} value, which JSON cannot hold")


def _py(value: Any) -> str:
    """A JSON value as the Python literal that ``ast.literal_eval`` reads back."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_py(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_py(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"not a JSON value: {value!r}")


def _plain_name(key: str) -> bool:
    # Python reads identifiers NFKC-normalised ("µ" becomes "μ"), so only stable ones go bare.
    return key.isidentifier() and not keyword.iskeyword(key) and unicodedata.normalize("NFKC", key) == key


def _render_call(call: ToolCall) -> str:
    named = [(k, v) for k, v in call.arguments.items() if _plain_name(k)]
    other = {k: v for k, v in call.arguments.items() if not _plain_name(k)}
    args = [f"{k}={_py(v)}" for k, v in named]
    if other:
        args.append(f"**{_py(other)}")
    return f"{call.name}({', '.join(args)})"
