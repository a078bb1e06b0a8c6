"""The Tool contract."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from traject.tools.context import ToolContext
from traject.types import ContentPart, ImagePart, ToolSchema


class ToolOutput(BaseModel):
    """A tool's answer. Tools may also return a plain ``str`` or an ``ImagePart``.

    ``done`` ends the episode after this step; a ``submit`` tool sets it and ``final_answer``.
    ``infra_error`` marks a failure of the tool's infrastructure (a sandbox that died, a
    database that went away), which marks the whole trajectory ``infra_error``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    content: str | list[ContentPart]
    is_error: bool = False
    reward: float | None = None
    done: bool = False
    final_answer: str | None = None
    infra_error: bool = False
    metadata: dict[str, JsonValue] = Field(default_factory=dict)

    @classmethod
    def coerce(cls, value: Any) -> ToolOutput:
        if isinstance(value, ToolOutput):
            return value
        if isinstance(value, str):
            return cls(content=value)
        if isinstance(value, ImagePart):
            return cls(content=[value])
        if isinstance(value, list) and all(isinstance(p, BaseModel) for p in value):
            return cls(content=value)
        if value is None:
            return cls(content="")
        import json

        try:
            return cls(content=json.dumps(value, ensure_ascii=False, default=str))
        except TypeError:
            return cls(content=str(value))


class ToolArgumentError(ValueError):
    """The arguments of a call did not fit the tool's schema. The message says which field and why."""


class Tool(ABC):
    """A callable the model can use.

    Subclasses set ``name``, ``description`` and ``parameters`` (a JSON schema of an object) and
    implement ``__call__``. Most users write ``@tool`` functions instead.
    """

    name: str
    description: str = ""
    parameters: dict[str, Any] = {"type": "object", "properties": {}}
    timeout_s: float | None = None

    @property
    def schema(self) -> ToolSchema:
        return ToolSchema(name=self.name, description=self.description, parameters=self.parameters)

    def validate_arguments(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Check ``arguments`` against the schema; raise ToolArgumentError naming the field."""
        return arguments

    @abstractmethod
    async def __call__(self, ctx: ToolContext, arguments: dict[str, Any]) -> ToolOutput: ...

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
