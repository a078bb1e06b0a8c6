"""GuiOracle: a scripted policy that solves every built-in GUI task from its observations.

It reads what any policy reads: the task line and the DOM listing (run the env with
``observation=["screenshot", "dom"]``), and acts with coordinate actions (mouse and keyboard,
in screenshot pixels), one step at a time, deciding each step from the current page. It is a
reference for tests, demos and benchmarks, and a template for scripted GUI policies.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Literal, NamedTuple

from traject.agents.policy import PolicyOutput
from traject.environments.gui.dom import DomElement, parse_dom
from traject.types import Message, ToolCall, ToolSchema

class Action(NamedTuple):
    name: str
    args: dict
    box: tuple[int, int, int, int] | None = None   # the element acted on: (x, y, w, h)


Solver = Callable[[re.Match, list[DomElement]], list[Action]]


class OracleError(RuntimeError):
    """The oracle does not know the task, or the page is not as it expects."""


def _find(dom: list[DomElement], *, text: str | None = None, tag: str | None = None,
          label: str | None = None, type: str | None = None) -> DomElement | None:  # noqa: A002
    for e in dom:
        if text is not None and e.text != text:
            continue
        if tag is not None and e.tag != tag:
            continue
        if label is not None and e.label != label:
            continue
        if type is not None and e.type != type:
            continue
        return e
    return None


def _need(e: DomElement | None, what: str) -> DomElement:
    if e is None:
        raise OracleError(f"the page has no {what}")
    return e


def _click(e: DomElement) -> Action:
    x, y = e.center
    return Action("click", {"x": x, "y": y}, e.box)


def _click_button(m: re.Match, dom: list[DomElement]) -> list[Action]:
    return [_click(_need(_find(dom, text=m.group(1), tag="button"), f"button {m.group(1)!r}"))]


def _click_link(m: re.Match, dom: list[DomElement]) -> list[Action]:
    return [_click(_need(_find(dom, text=m.group(1), tag="a"), f"link {m.group(1)!r}"))]


def _fill(field: DomElement, text: str) -> list[Action] | None:
    """Steps to make ``field`` hold ``text``; None when it already does."""
    if field.value == text:
        return None
    if not field.focused:
        return [_click(field)]
    if field.value:
        return [Action("key", {"name": "Control+a"}), Action("key", {"name": "Backspace"})]
    return [Action("type", {"text": text})]


def _enter_text(m: re.Match, dom: list[DomElement]) -> list[Action]:
    field = _need(_find(dom, tag="input", type="text"), "text field")
    return _fill(field, m.group(1)) or [_click(_need(_find(dom, text="Submit", tag="button"), "Submit"))]


def _enter_text_enter(m: re.Match, dom: list[DomElement]) -> list[Action]:
    field = _need(_find(dom, tag="input", type="text"), "text field")
    return _fill(field, m.group(1)) or [Action("key", {"name": "Enter"})]


def _select_option(m: re.Match, dom: list[DomElement]) -> list[Action]:
    select = _need(_find(dom, tag="select"), "select")
    assert select.options is not None
    want = m.group(1)
    if select.value == want:
        return [_click(_need(_find(dom, text="Submit", tag="button"), "Submit"))]
    # Open the list, move to the option with the arrow keys, and pick it with Enter.
    delta = select.options.index(want) - select.options.index(select.value or select.options[0])
    arrow = "ArrowDown" if delta > 0 else "ArrowUp"
    return [_click(select)] + [Action("key", {"name": arrow})] * abs(delta) + [Action("key", {"name": "Enter"})]


def _toggle(dom: list[DomElement], wanted: set[str]) -> list[Action]:
    for label in (e for e in dom if e.tag == "label"):
        if label.checked is not None and label.checked != (label.text in wanted):
            return [_click(label)]
    return []


def _check_boxes(m: re.Match, dom: list[DomElement]) -> list[Action]:
    wanted = {w.strip() for w in m.group(1).split(",")}
    return _toggle(dom, wanted) or [_click(_need(_find(dom, text="Submit", tag="button"), "Submit"))]


def _radio_choice(m: re.Match, dom: list[DomElement]) -> list[Action]:
    return _toggle(dom, {m.group(1)}) or [_click(_need(_find(dom, text="Submit", tag="button"), "Submit"))]


def _date_field(m: re.Match, dom: list[DomElement]) -> list[Action]:
    month, day, year = m.group(1).split("/")
    field = _need(_find(dom, tag="input", type="date"), "date field")
    if field.value == f"{year}-{month}-{day}":
        return [_click(_need(_find(dom, text="Submit", tag="button"), "Submit"))]
    x, y, _, h = field.box
    # Click the month part (the left end of the field), then type the digits: the field moves on
    # to the day and the year by itself.
    return [Action("click", {"x": x + 12, "y": y + h // 2}, field.box),
            Action("type", {"text": month + day + year})]


def _navigate_tabs(m: re.Match, dom: list[DomElement]) -> list[Action]:
    button = _find(dom, text=m.group(2), tag="button")
    if button is not None and button.in_view:
        return [_click(button)]
    return [_click(_need(_find(dom, text=f"Tab #{m.group(1)}"), f"Tab #{m.group(1)}"))]


def _scroll_to_find(m: re.Match, dom: list[DomElement]) -> list[Action]:
    button = _need(_find(dom, text=m.group(1), tag="button"), f"button {m.group(1)!r}")
    if button.in_view:
        return [_click(button)]
    row = _need(next((e for e in dom if e.text.startswith("Item ") and e.in_view), None), "visible list row")
    x, y = row.center
    return [Action("scroll", {"dx": 0, "dy": 150, "x": x, "y": y})]


def _two_step_form(m: re.Match, dom: list[DomElement]) -> list[Action]:
    name, colour = m.group(1), m.group(2)
    field = _find(dom, tag="input", type="text")
    if field is not None:
        return _fill(field, name) or [_click(_need(_find(dom, text="Next", tag="button"), "Next"))]
    return _toggle(dom, {colour}) or [_click(_need(_find(dom, text="Submit", tag="button"), "Submit"))]


def _double_click(m: re.Match, dom: list[DomElement]) -> list[Action]:
    square = _need(_find(dom, label=f"{m.group(1)} square"), f"{m.group(1)} square")
    x, y = square.center
    return [Action("double_click", {"x": x, "y": y}, square.box)]


def _drag_box(m: re.Match, dom: list[DomElement]) -> list[Action]:
    box = _need(_find(dom, text="box"), "box")
    zone = _need(_find(dom, text=f"{m.group(1)} zone"), f"{m.group(1)} zone")
    (x1, y1), (x2, y2) = box.center, zone.center
    return [Action("drag", {"x1": x1, "y1": y1, "x2": x2, "y2": y2}, box.box)]


def _wait_for_button(m: re.Match, dom: list[DomElement]) -> list[Action]:
    ready = _find(dom, text="Ready", tag="button")
    return [_click(ready)] if ready is not None else [Action("wait", {"seconds": 0.4})]


def _answer_question(m: re.Match, dom: list[DomElement]) -> list[Action]:
    numbers = [int(e.text) for e in dom if e.tag == "span" and e.text.isdigit()]
    if not numbers:
        raise OracleError("the page shows no numbers")
    return [Action("done", {"answer": str(max(numbers))})]


SOLVERS: list[tuple[re.Pattern[str], Solver]] = [
    (re.compile(r'^Click on the "(.+)" button\.$'), _click_button),
    (re.compile(r'^Click on the link "(.+)"\.$'), _click_link),
    (re.compile(r'^Enter "(.+)" into the text field and press Submit\.$'), _enter_text),
    (re.compile(r'^Type "(.+)" into the box and press Enter\.$'), _enter_text_enter),
    (re.compile(r"^Select (.+) from the list and click Submit\.$"), _select_option),
    (re.compile(r"^Select (.+) and nothing else, then click Submit\.$"), _check_boxes),
    (re.compile(r"^Choose (.+) and click Submit\.$"), _radio_choice),
    (re.compile(r"^Enter the date (\d\d/\d\d/\d{4}) and click Submit\.$"), _date_field),
    (re.compile(r'^Go to Tab #(\d+) and click "(.+)"\.$'), _navigate_tabs),
    (re.compile(r'^Scroll down the list and click the "(.+)" button\.$'), _scroll_to_find),
    (re.compile(r"^Sign up as (.+) and choose the colour (.+)\.$"), _two_step_form),
    (re.compile(r"^Double-click the (.+) square\.$"), _double_click),
    (re.compile(r"^Drag the box into the (.+) zone\.$"), _drag_box),
    (re.compile(r'^Wait until the button says "Ready", then click it\.$'), _wait_for_button),
    (re.compile(r"^What is the largest number in the boxes\?"), _answer_question),
]


def oracle_actions(utterance: str, dom: list[DomElement]) -> list[Action]:
    """The oracle's next actions for a built-in task, from its utterance and current DOM."""
    for pattern, solve in SOLVERS:
        m = pattern.match(utterance)
        if m:
            return solve(m, dom)
    raise OracleError(f"the oracle knows no task that says {utterance!r}")


def render_text_action(name: str, args: dict) -> str:
    return f"{name}(" + ", ".join(f"{k}={v!r}" for k, v in args.items()) + ")"


def _btl_action(a: Action) -> dict:
    args = dict(a.args)
    if "x" in args and "y" in args:
        args["point_2d"] = [args.pop("x"), args.pop("y")]
    if a.name == "drag":
        args = {"start_point_2d": [args["x1"], args["y1"]], "end_point_2d": [args["x2"], args["y2"]]}
    return {"function": a.name, **args}


def render_btl(actions: list[Action]) -> str:
    """A Blink-Think-Link reply (BTL-UI's layout): the regions looked at in ``<blink>``, the
    action(s) in ``<link>``."""
    blink = [{"bbox_2d": [x, y, x + w, y + h], "label": a.name} for a in actions if a.box
             for x, y, w, h in [a.box]]
    link = [{"Plan": f"{a.name} to move the task on", "Action": _btl_action(a)} for a in actions]
    return (f"<blink>{json.dumps(blink)}</blink><think>The task needs {len(actions)} action(s) now.</think>"
            f"<link>{json.dumps(link)}</link>")


class GuiOracle:
    """Solves built-in GUI tasks. ``style``: ``tools`` answers with native tool calls, ``text``
    with ``Action: ...`` lines, ``btl`` with a Blink-Think-Link reply (the target's box in
    ``<blink>``, the action in ``<link>``)."""

    def __init__(self, style: Literal["tools", "text", "btl"] = "tools") -> None:
        self.style = style

    async def act(self, messages: list[Message], tools: list[ToolSchema]) -> PolicyOutput:
        task_line = next((line for m in messages if m.role == "user" for line in m.text.splitlines()
                          if line.startswith("Task: ")), None)
        if task_line is None:
            raise OracleError("no 'Task:' line in the conversation")
        last = next(m for m in reversed(messages) if m.role == "user")
        if "Elements:" not in last.text:
            raise OracleError("the oracle reads the DOM listing: run the env with observation=['screenshot', 'dom']")
        dom = parse_dom(last.text.split("Elements:", 1)[1])
        actions = oracle_actions(task_line[len("Task: "):], dom)
        if self.style == "tools":
            message = Message.assistant(tool_calls=[ToolCall(name=a.name, arguments=a.args) for a in actions])
        elif self.style == "text":
            message = Message.assistant("Action: " + "; ".join(render_text_action(a.name, a.args) for a in actions))
        else:
            message = Message.assistant(render_btl(actions))
        return PolicyOutput(message=message)
