"""A gold agent for the built-in ``lookup`` env: looks up each item in turn, then submits the
total. As a scripted policy (``traject eval --policy scripted:traject.testing.lookup_oracle:solve``)
or as the brain of a ScriptedChatServer (``responder()``), so that the whole HTTP path runs.

>>> next_call("How much do 2 apple and 1 pear cost in total?", ["3"])
('lookup', {'item': 'pear'})
>>> next_call("How much do 2 apple and 1 pear cost in total?", ["3", "5"])
('submit', {'answer': 11})
"""

from __future__ import annotations

import re
from typing import Any

from traject.testing.openai_server import ChatRequest, ScriptedReply
from traject.types import Message, ToolCall, ToolSchema

_ITEM = re.compile(r"(\d+) ([a-z]+)")


def next_call(prompt: str, results: list[str], *, wrong: bool = False) -> tuple[str, dict[str, Any]]:
    """The next tool call, given the task's question and the tool results so far; ``wrong``
    submits a total that is off by one."""
    order = [(item, int(qty)) for qty, item in _ITEM.findall(prompt)]
    if len(results) < len(order):
        return "lookup", {"item": order[len(results)][0]}
    total = sum(qty * int(price) for (_, qty), price in zip(order, results, strict=False))
    return "submit", {"answer": total + (1 if wrong else 0)}


def solve(messages: list[Message], tools: list[ToolSchema]) -> Message:
    prompt = next(m.text for m in messages if m.role == "user")
    results = [m.text for m in messages if m.role == "tool"]
    name, args = next_call(prompt, results)
    return Message.assistant("", tool_calls=[ToolCall(name=name, arguments=args)])


def responder(*, wrong_every: int = 0, delay_s: float = 0.0):  # noqa: ANN201 - a Responder
    """A ScriptedChatServer responder playing the oracle over the real chat API. With
    ``wrong_every`` = m, the tasks whose prompt bytes sum to 0 mod m get a wrong total, so that
    a run has failures too (stably: the same tasks fail on every run)."""

    def respond(req: ChatRequest) -> ScriptedReply:
        prompt = next((str(m.get("content") or "") for m in req.messages if m.get("role") == "user"), "")
        results = [str(m.get("content")) for m in req.messages if m.get("role") == "tool"]
        wrong = bool(wrong_every) and sum(prompt.encode()) % wrong_every == 0
        name, args = next_call(prompt, results, wrong=wrong)
        return ScriptedReply(content="", tool_calls=[(name, args)], delay_s=delay_s,
                             prompt_tokens=20 + 5 * len(results), completion_tokens=8)

    return respond
