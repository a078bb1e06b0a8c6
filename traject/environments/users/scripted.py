"""ScriptedUser: the user says fixed turns, e.g. the reference conversation's next user turn,
as CM2 does when it scores an agent turn by turn against a reference.

>>> import anyio
>>> from traject.types import Message, Task
>>> user = ScriptedUser(["I need a refund.", "Order W1."])
>>> anyio.run(user.reset, Task(id="t")).text
'I need a refund.'
>>> turn = anyio.run(user.respond, [Message.assistant("Which order?")])
>>> turn.message.text, turn.done
('Order W1.', False)
>>> anyio.run(user.respond, [Message.assistant("Done.")]).done
True
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import JsonValue

from traject.environments.users.base import UserSimulator, UserTurn
from traject.types import Message, Task


class ScriptedUser(UserSimulator):
    """Says ``turns`` in order; when they run out, the user ends the conversation.

    Without ``turns`` the task's ``data[turns_field]`` (default ``"user_turns"``) is used. When
    the task has no prompt of its own, the first turn opens the conversation.
    """

    def __init__(self, turns: Sequence[str] | None = None, *, turns_field: str = "user_turns",
                 end_with_last: bool = False) -> None:
        self.turns = list(turns) if turns is not None else None
        self.turns_field = turns_field
        self.end_with_last = end_with_last
        self._queue: list[str] = []
        self._said = 0

    async def reset(self, task: Task) -> Message | None:
        turns = self.turns
        if turns is None:
            raw = task.data.get(self.turns_field)
            if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
                raise ValueError(f"task {task.id!r} has no list of strings in data[{self.turns_field!r}] for the "
                                 "ScriptedUser: give the task its user turns, or pass turns=")
            turns = list(raw)  # type: ignore[arg-type]
        self._queue = list(turns)
        self._said = 0
        if task.initial_messages() or not self._queue:
            return None
        self._said += 1
        return Message.user(self._queue.pop(0))

    async def respond(self, messages: list[Message]) -> UserTurn:
        if not self._queue:
            return UserTurn(message=None, done=True, state=self.state)
        self._said += 1
        text = self._queue.pop(0)
        done = self.end_with_last and not self._queue
        return UserTurn(message=Message.user(text), done=done, state=self.state)

    @property
    def state(self) -> dict[str, JsonValue]:
        return {"user_turns": self._said, "turns_left": len(self._queue)}
