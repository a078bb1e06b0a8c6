"""The UserSimulator contract: the user side of a conversation."""

from __future__ import annotations

from abc import ABC, abstractmethod

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from traject.types import Message, Task


class UserTurn(BaseModel):
    """The user's next move. ``message`` is None only when the user ends without a word."""

    model_config = ConfigDict(extra="forbid")

    message: Message | None
    done: bool = False
    state: dict[str, JsonValue] = Field(default_factory=dict)


class UserSimulator(ABC):
    """One instance per episode. Raise ``InfraError`` when the simulator's backend fails after
    its retries: the episode is then marked ``infra_error``, never the agent's failure."""

    @abstractmethod
    async def reset(self, task: Task) -> Message | None:
        """Start; return the user's opening message, or None to open with the task's prompt."""

    @abstractmethod
    async def respond(self, messages: list[Message]) -> UserTurn:
        """Given the conversation so far (the agent just spoke), give the user's reply."""

    @property
    def state(self) -> dict[str, JsonValue]:
        return {}

    async def aclose(self) -> None:
        return None
