"""An env of simulated tools, CM2 style: the task brings its tool schemas, recorded tool results
and the reference conversation's user turns; the tools are simulated (replay, schema check, model),
the user is scripted with the reference's next user turn, and the reward is usually the task's
checklist.

Task data::

    {"tools": [{"name", "description", "parameters"}, ...],
     "tool_records": [{"name", "arguments", "result"}, ...],
     "user_turns": ["first user message", "next user message", ...],
     "checklist": [...]}                       # for traject.rewards.checklist
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from traject.environments.simulated_tools.simulator import RecordedCall, SimulatedTool
from traject.environments.tool_env import ToolEnv
from traject.environments.users.base import UserSimulator
from traject.environments.users.llm import SimulatorLLM, SimulatorLLMConfig
from traject.environments.users.scripted import ScriptedUser
from traject.tools.base import Tool
from traject.tools.context import ToolContext
from traject.tools.toolset import Toolset
from traject.types import ToolSchema

if TYPE_CHECKING:
    from traject.rewards.base import Reward


class SimulatedToolsTaskData(BaseModel):
    model_config = ConfigDict(extra="allow")

    tools: list[ToolSchema]
    tool_records: list[RecordedCall] = Field(default_factory=list)


class SimulatedToolset(Toolset):
    """The task's tool schemas, each backed by a SimulatedTool sharing one simulator model."""

    def __init__(self, llm: SimulatorLLM) -> None:
        self.llm = llm
        self._tools: list[Tool] = []

    async def setup(self, ctx: ToolContext) -> None:
        try:
            data = SimulatedToolsTaskData.model_validate(ctx.task.data)
        except ValidationError as exc:
            raise ValueError(f"task {ctx.task.id!r} is not a simulated-tools task (data needs 'tools': a list of "
                             f"{{name, description, parameters}}, and optionally 'tool_records'): {exc}") from exc
        self._tools = [SimulatedTool(schema, records=data.tool_records, llm=self.llm) for schema in data.tools]

    async def teardown(self, ctx: ToolContext) -> None:
        self._tools = []
        await self.llm.aclose()

    def tools(self) -> list[Tool]:
        return list(self._tools)


def make_simulated_tools_env(*, tool_base_url: str | None = None, tool_model: str | None = None,
                             user: UserSimulator | None = None, reward: Reward | None = None,
                             max_turns: int = 20, system_prompt: str | None = None) -> ToolEnv:
    llm = SimulatorLLM(SimulatorLLMConfig(base_url=tool_base_url, model=tool_model, env_prefix="TRAJECT_TOOLSIM",
                                          temperature=0.0), name="tool simulator")
    return ToolEnv([SimulatedToolset(llm)], name="simulated_tools", system_prompt=system_prompt,
                   max_turns=max_turns, user=user or ScriptedUser(), reward=reward)
