"""Actions written as text, for models that do not call tools natively.

Accepted forms (the first that applies wins):

* a Blink-Think-Link answer: the action is inside ``<link>...</link>``;
* a line starting with ``Action:``;
* otherwise the last line of the reply that is an action.

An action is a call with literal arguments, ``click(120, 45)``, ``type(text="hello")``,
``done("42")``, or a JSON object ``{"action": "click", "coordinate": [120, 45]}``; inside
``<link>``, BTL-UI's JSON list ``[{"Plan": ..., "Action": {"function": "click", "point_2d":
[x, y]}}]`` (optionally in a ```json fence). Several actions may be given, one per line (or
separated by ``;``) inside ``<link>`` or after ``Action:``.

>>> [c.name for c in parse_text_actions("I see it.\\nAction: click(12, 30)", {"click": ["x", "y"]})]
['click']
>>> parse_text_actions("click(12, 30)", {"click": ["x", "y"]})[0].arguments
{'x': 12, 'y': 30}
"""

from __future__ import annotations

import ast
import json
import re

from traject.types import ToolCall

_LINK = re.compile(r"<link>(.*?)</link>", re.DOTALL | re.IGNORECASE)
_ACTION = re.compile(r"^\s*(?:\*\*)?action(?:\*\*)?\s*:\s*(.+)$", re.IGNORECASE | re.MULTILINE)
_CALL_START = re.compile(r"^\s*`*\s*([A-Za-z_]\w*)\s*\(")
_JSON_ACTION = re.compile(r'^\s*\{.*"(?:action|action_type|function|name|Action|point_2d)"\s*:')


class TextActionError(ValueError):
    pass


_ALIASES = {
    "tap": "click", "click": "click", "leftclick": "click",
    "doubletap": "double_click", "doubleclick": "double_click",
    "type": "type", "input": "type", "typetext": "type",
    "key": "key", "press": "key", "presskey": "key", "hotkey": "key", "keypress": "key",
    "scroll": "scroll", "swipe": "scroll", "drag": "drag", "wait": "wait",
    "done": "done", "finish": "done", "finished": "done", "complete": "done", "terminate": "done",
    "answer": "done", "stop": "done",
}
_SCROLL = {"down": (0, 1), "up": (0, -1), "right": (1, 0), "left": (-1, 0)}
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL | re.IGNORECASE)


def _pair(value: object, what: str) -> tuple[object, object]:
    if isinstance(value, list | tuple) and len(value) == 2:
        return value[0], value[1]
    raise TextActionError(f"{what} must be [x, y], got {value!r}")


def action_from_json(obj: object, params: dict[str, list[str]], raw: str | None = None) -> ToolCall:
    """One action from a JSON object: ``{"action": "click", "x": 1, "y": 2}``, an OpenAI-style
    ``{"name": ..., "arguments": {...}}``, or a BTL-UI link entry ``{"Action": {"function":
    "click", "point_2d": [x, y]}}`` / a grounding answer ``{"point_2d": [x, y]}``."""
    if not isinstance(obj, dict):
        raise TextActionError(f"an action must be a JSON object, got {obj!r}")
    obj = dict(obj["Action"]) if isinstance(obj.get("Action"), dict) else dict(obj)
    name = None
    for key in ("function", "action", "action_type", "name"):
        if isinstance(obj.get(key), str):
            name = obj.pop(key)
            break
    if name is None and "point_2d" in obj:
        name = "click"
    if name is None:
        raise TextActionError(f"the action {raw or obj!r} names no action (give \"action\": \"click\")")
    if isinstance(obj.get("arguments"), dict):
        obj = dict(obj["arguments"])
    if name not in params:
        name = _ALIASES.get(re.sub(r"[\s_\-]", "", name).lower(), name)
    if name not in params:
        raise TextActionError(f"there is no action named {name!r}; actions: {', '.join(sorted(params))}")
    obj.pop("Plan", None)
    point = obj.pop("point_2d", None) or obj.pop("coordinate", None) or obj.pop("point", None)
    if name == "drag":
        start, end = obj.pop("start_point_2d", None) or point, obj.pop("end_point_2d", None)
        if start is not None and end is not None:
            (obj["x1"], obj["y1"]), (obj["x2"], obj["y2"]) = _pair(start, "start_point_2d"), _pair(end, "end_point_2d")
    elif name == "scroll":
        direction = obj.pop("direction", None)
        if point is not None:
            obj["x"], obj["y"] = _pair(point, "point_2d")
        if isinstance(direction, str):
            if direction.lower() not in _SCROLL:
                raise TextActionError(f"scroll direction must be up, down, left or right, not {direction!r}")
            amount = obj.pop("distance", None) or obj.pop("amount", None) or 200
            ux, uy = _SCROLL[direction.lower()]
            obj["dx"], obj["dy"] = ux * amount, uy * amount
    elif point is not None:
        obj["x"], obj["y"] = _pair(point, "point_2d")
    if name == "key" and "name" not in obj:
        for key in ("key", "text", "keys"):
            if key in obj:
                obj["name"] = obj.pop(key)
                break
    if name == "done" and "answer" not in obj and "text" in obj:
        obj["answer"] = obj.pop("text")
    if name == "wait" and "seconds" not in obj:
        for key in ("time", "duration"):
            if key in obj:
                obj["seconds"] = obj.pop(key)
    return ToolCall(name=name, arguments=obj, raw=raw)


def _parse_one(text: str, params: dict[str, list[str]]) -> ToolCall:
    text = text.strip().strip("`").strip().rstrip(";").strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TextActionError(f"the action {text!r} is not valid JSON: {exc.msg}") from None
        return action_from_json(obj, params, raw=text)
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        raise TextActionError(f"the action {text!r} is not a call such as click(120, 45)") from None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise TextActionError(f"the action {text!r} is not a call such as click(120, 45)")
    name = node.func.id
    order = params.get(name)
    if order is None:
        raise TextActionError(f"there is no action named {name!r}; actions: {', '.join(sorted(params))}")
    args: dict = {}
    if len(node.args) > len(order):
        raise TextActionError(f"{name} takes at most {len(order)} arguments ({', '.join(order)})")
    if any(kw.arg is None for kw in node.keywords):
        raise TextActionError(f"{name}: **kwargs are not allowed")
    try:
        for key, value in [*zip(order, node.args), *((kw.arg, kw.value) for kw in node.keywords)]:
            args[key] = ast.literal_eval(value)
    except ValueError:
        raise TextActionError(f"the arguments of {text!r} must be literals (numbers, strings)") from None
    return ToolCall(name=name, arguments=args, raw=text)


def _split(block: str) -> list[str]:
    parts: list[str] = []
    for line in block.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            parts.append(line)
        else:
            parts.extend(p for p in _split_semicolons(line) if p.strip())
    return parts


def _split_semicolons(line: str) -> list[str]:
    out, depth, quote, cur = [], 0, None, ""
    for ch in line:
        if quote:
            cur += ch
            if ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == ";" and depth == 0:
            out.append(cur)
            cur = ""
            continue
        cur += ch
    out.append(cur)
    return out


def parse_text_actions(text: str, params: dict[str, list[str]]) -> list[ToolCall]:
    """The actions in a reply. ``params`` maps each action's name to its parameters in order
    (for positional arguments). Raises TextActionError, saying what is wrong, when the reply
    holds no well-formed action."""
    link = _LINK.findall(text)
    if link:
        block = link[-1]
        if not block.strip():
            raise TextActionError("the <link> block is empty: put an action in it, e.g. click(120, 45)")
        fenced = _FENCE.match(block)
        body = (fenced.group(1) if fenced else block).strip()
        if body.startswith("["):
            try:
                entries = json.loads(body)
            except json.JSONDecodeError as exc:
                raise TextActionError(f"the <link> block is not valid JSON: {exc.msg}") from None
            if not isinstance(entries, list) or not entries:
                raise TextActionError("the <link> block holds an empty list: give one action")
            return [action_from_json(e, params, raw=json.dumps(e)) for e in entries]
        if fenced and body.startswith("{"):
            return [_parse_one(body, params)]
        return [_parse_one(p, params) for p in _split(block)]
    actions = _ACTION.findall(text)
    if actions:
        return [_parse_one(p, params) for p in _split_semicolons(actions[-1]) if p.strip()]
    for line in reversed(text.strip().splitlines()):
        m = _CALL_START.match(line)
        if (m and m.group(1) in params) or _JSON_ACTION.match(line):
            return [_parse_one(line, params)]
    names = ", ".join(sorted(params))
    raise TextActionError(f"no action found in the reply: end it with an action such as click(120, 45) "
                          f"(actions: {names})")
