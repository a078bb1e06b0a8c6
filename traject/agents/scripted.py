"""ScriptedPolicy: replays given actions. For demonstrations, gold replays and tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from inspect import isawaitable

from traject.agents.policy import PolicyOutput
from traject.types import Message, ToolSchema

ScriptFn = Callable[[list[Message], list[ToolSchema]], Message | Awaitable[Message]]


class ScriptedPolicy:
    """Answers turn k with ``script[k]``, where k counts the assistant messages already in the
    conversation, so one ScriptedPolicy serves many concurrent episodes. ``script`` may be a
    list of Messages, or a function of (messages, tools) for scripts that read observations.

    >>> import anyio
    >>> from traject.types import Message
    >>> p = ScriptedPolicy([Message.assistant("hi"), Message.assistant("bye")])
    >>> anyio.run(p.act, [Message.user("x")], []).message.text
    'hi'
    """

    def __init__(self, script: Sequence[Message] | ScriptFn) -> None:
        self.script = script

    async def act(self, messages: list[Message], tools: list[ToolSchema]) -> PolicyOutput:
        if callable(self.script):
            out = self.script(messages, tools)
            message = await out if isawaitable(out) else out
        else:
            k = sum(1 for m in messages if m.role == "assistant")
            if k >= len(self.script):
                message = Message.assistant("")
            else:
                message = self.script[k].model_copy(deep=True)
        if message.role != "assistant":
            raise ValueError(f"a scripted action must be an assistant message, got role {message.role!r}")
        return PolicyOutput(message=message)
