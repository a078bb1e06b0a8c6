"""tau2-bench's task format (``data/tau2/domains/<name>/tasks.json``), as pydantic models.

Only what traject reads is typed; every other field is kept (``extra="allow"``) and carried in
the task, so a tasks file of any tau2 version loads unchanged.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Requestor = Literal["user", "assistant"]
RewardBasis = Literal["DB", "ENV_ASSERTION", "NL_ASSERTION", "ACTION", "COMMUNICATE", "CHECKLIST"]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Action(_Open):
    """A tool call of the reference solution (``evaluation_criteria.actions``)."""

    action_id: str = ""
    requestor: Requestor = "assistant"
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    info: str | None = None
    compare_args: list[str] | None = None

    def matches(self, name: str, arguments: dict[str, Any]) -> bool:
        """tau2's ``Action.compare_with_tool_call``: same name, and the compared arguments equal."""
        if name != self.name:
            return False
        keys = list(arguments) if self.compare_args is None else self.compare_args
        if not keys:
            return True
        return ({k: v for k, v in arguments.items() if k in keys}
                == {k: v for k, v in self.arguments.items() if k in keys})


class EnvFunctionCall(_Open):
    env_type: Requestor
    func_name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class EnvAssertion(EnvFunctionCall):
    assert_value: bool = True
    message: str | None = None


class EvaluationCriteria(_Open):
    actions: list[Action] | None = None
    env_assertions: list[EnvAssertion] | None = None
    communicate_info: list[str] | None = None
    nl_assertions: list[str] | None = None
    reward_basis: list[RewardBasis] = Field(default_factory=lambda: ["DB", "COMMUNICATE"])
    # traject's extension: CM2 checklist items for a CHECKLIST basis.
    checklist: list[dict[str, Any]] | None = None


class InitializationData(_Open):
    agent_data: dict[str, Any] | None = None
    user_data: dict[str, Any] | None = None


class HistoryToolCall(_Open):
    id: str = ""
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    requestor: Requestor | None = None


class HistoryMessage(_Open):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: list[HistoryToolCall] | None = None
    id: str | None = None  # a tool message's call id
    requestor: Requestor | None = None


class InitialState(_Open):
    initialization_data: InitializationData | None = None
    initialization_actions: list[EnvFunctionCall] | None = None
    message_history: list[HistoryMessage] | None = None


class Tau2Task(_Open):
    id: str
    description: dict[str, Any] | str | None = None
    user_scenario: dict[str, Any]
    ticket: str | None = None
    initial_state: InitialState | None = None
    evaluation_criteria: EvaluationCriteria | None = None
    user_tools: list[str] | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v

    @property
    def criteria(self) -> EvaluationCriteria:
        return self.evaluation_criteria or EvaluationCriteria(reward_basis=[])
