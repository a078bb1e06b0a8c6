"""The Env contract, in Gym's vocabulary: ``reset``, ``step``, ``terminated``/``truncated``.

One Env instance runs one episode at a time; run many instances for concurrency.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from traject.types import Message, Task, Timings, ToolResult, ToolSchema

if TYPE_CHECKING:
    from traject.rewards.base import Reward


class EnvSpec(BaseModel):
    """What an env is, as far as a runner needs to know."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    max_turns: int = 10
    tools: list[ToolSchema] = Field(default_factory=list)
    system_prompt: str | None = None


class StepResult(BaseModel):
    """The env's answer to one assistant message.

    ``terminated``: the episode reached a natural end (answer submitted, user said goodbye).
    ``truncated``: it was cut (turn budget). ``reward`` is this step's reward; the outcome
    reward of the whole episode is the Reward's business.
    """

    model_config = ConfigDict(extra="forbid")

    observations: list[Message] = Field(default_factory=list)
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    tool_results: list[ToolResult] = Field(default_factory=list)
    format_errors: int = 0
    final_answer: str | None = None
    info: dict[str, JsonValue] = Field(default_factory=dict)
    timings: Timings = Field(default_factory=Timings)

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


class Env(ABC):
    spec: EnvSpec
    #: The env's default outcome reward; a runner may use another.
    reward: Reward | None = None

    @abstractmethod
    async def reset(self, task: Task) -> list[Message]:
        """Start an episode on ``task`` and return the first messages the policy sees."""

    @abstractmethod
    async def step(self, action: Message) -> StepResult:
        """Apply the assistant's message. Raise ``InfraError`` when the env's own machinery fails."""

    async def aclose(self) -> None:
        """Release what the episode holds (sandboxes, browsers, connections). Idempotent."""

    @property
    def tools(self) -> list[ToolSchema]:
        """The tools offered to the policy in the current episode (valid after ``reset``)."""
        return self.spec.tools

    async def __aenter__(self) -> Env:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
