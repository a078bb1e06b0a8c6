"""A policy that runs out of context ends the episode truncated, scored, not as an infra error."""

from __future__ import annotations

import pytest

from traject.agents.loop import AgentLoop
from traject.agents.policy import ContextExhausted, PolicyOutput
from traject.environments.registry import load_tasks, make
from traject.types import Message, Status, ToolCall

pytestmark = pytest.mark.anyio


class OneLookupThenFull:
    async def act(self, messages, tools):
        if any(m.role == "assistant" for m in messages):
            raise ContextExhausted("no room left")
        return PolicyOutput(message=Message.assistant(tool_calls=[ToolCall(name="lookup", arguments={"item": "x"})]))


async def test_context_exhausted_truncates_and_scores():
    task = load_tasks("lookup", n=1)[0]
    traj = await AgentLoop(OneLookupThenFull()).run(make("lookup"), task)
    assert traj.status is Status.MAX_TURNS
    assert "context" in traj.info["truncated_by"]
    assert traj.reward is not None and traj.reward.total == 0.0 and traj.trainable
    assert [m.role for m in traj.messages] == ["system", "user", "assistant", "tool"]
