"""A conversation cut into CM2's turns and steps.

A turn opens at each user message (turn 0 at the first); every assistant message of a turn is
one step (step 0 first), and the tool messages right after an assistant message are that
step's results. Messages before the first user message (the system prompt) belong to no turn.

A step *has a tool-call error* when one of its calls was botched (``ToolCall.error``) or one
of its results is an error: any error result by default, or only the ``error_kinds`` given.
The ToolResults come from the trajectory's Steps (or from the env, during an episode); tool
messages alone do not say whether they report an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from traject.types import Message, ToolResult, Trajectory


@dataclass(frozen=True)
class StepView:
    turn: int
    step: int                    # index within the turn
    index: int                   # position of the assistant message in ``messages``
    end: int                     # one past the step's last tool message
    tool_error: bool


@dataclass
class Conversation:
    messages: list[Message]
    turn_starts: list[int] = field(default_factory=list)   # message index of each turn's user message
    steps: list[StepView] = field(default_factory=list)

    @property
    def num_turns(self) -> int:
        return len(self.turn_starts)

    def steps_of(self, turn: int) -> list[StepView]:
        return [s for s in self.steps if s.turn == turn]

    def before_turn(self, turn: int) -> list[Message]:
        return self.messages[: self.turn_starts[turn]]

    def turn_until(self, step: StepView) -> list[Message]:
        """The turn's messages from its user message up to the step's last tool result."""
        return self.messages[self.turn_starts[step.turn]: step.end]


def error_call_ids(results: Iterable[ToolResult], error_kinds: Iterable[str] | None = None) -> set[str]:
    kinds = set(error_kinds) if error_kinds is not None else None
    return {r.call_id for r in results
            if r.is_error and (kinds is None or (r.error_kind is not None and r.error_kind in kinds))}


def segment(messages: list[Message], tool_results: Iterable[ToolResult] = (),
            error_kinds: Iterable[str] | None = None) -> Conversation:
    errors = error_call_ids(tool_results, error_kinds)
    conv = Conversation(messages=list(messages))
    turn = -1
    step = 0
    i = 0
    n = len(messages)
    while i < n:
        m = messages[i]
        if m.role == "user":
            turn += 1
            step = 0
            conv.turn_starts.append(i)
            i += 1
            continue
        if m.role == "assistant" and turn >= 0:
            j = i + 1
            while j < n and messages[j].role == "tool":
                j += 1
            call_ids = {c.id for c in m.tool_calls}
            answered = {t.tool_call_id for t in messages[i + 1: j]}
            bad = (any(c.error is not None for c in m.tool_calls)
                   or bool(errors & call_ids) or bool(errors & answered))
            conv.steps.append(StepView(turn=turn, step=step, index=i, end=j, tool_error=bad))
            step += 1
            i = j
            continue
        i += 1
    return conv


def from_trajectory(traj: Trajectory, error_kinds: Iterable[str] | None = None) -> Conversation:
    results = [r for s in traj.steps for r in s.tool_results]
    return segment(traj.messages, results, error_kinds)
