"""The Policy contract: messages and tools in, one assistant message out."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from traject.types import InfraError, Message, ToolSchema


class PolicyOutput(BaseModel):
    """One assistant message, with its exact tokens in ``message.generation`` when the backend
    can give them (HF, vLLM, verl), and what it cost."""

    model_config = ConfigDict(extra="forbid")

    message: Message
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0


class ContextExhausted(Exception):  # noqa: N818 - a condition, not an error
    """The policy has no room left to generate (context window or response budget spent).

    Not a failure of anyone: the agent loop ends the episode there as truncated (status
    ``max_turns``) and scores it like any other."""


class PolicyError(InfraError):
    """The policy's backend failed after its retries (endpoint down, 5xx): an infra error."""


@runtime_checkable
class Policy(Protocol):
    async def act(self, messages: list[Message], tools: list[ToolSchema]) -> PolicyOutput: ...
