"""LLMUser: a tau-bench style simulated customer.

The user model gets a persona and hidden instructions (why it calls, what it knows, what it
does not know), sees only the agent's words (never its tool calls or its thoughts), speaks
only as the user, and ends the conversation with a stop marker. Where the domain gives the
user tools of its own (dual control: the user toggles a setting on their phone, reads a
label), the user model may call them between messages; those calls are the user's, run on
the same episode state, and are not shown to the agent.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError

from traject.environments.users.base import UserSimulator, UserTurn
from traject.environments.users.character import DEFAULT_BREAK_PATTERNS, CharacterCheck
from traject.environments.users.llm import ChatReply, SimulatorLLM, SimulatorLLMConfig
from traject.environments.users.view import agent_says, new_agent_words
from traject.tools.base import Tool, ToolArgumentError
from traject.tools.context import ToolContext
from traject.types import Message, Task

STOP = "###STOP###"
TRANSFER = "###TRANSFER###"
OUT_OF_SCOPE = "###OUT-OF-SCOPE###"

GUIDELINES = """\
You are playing a customer who contacts a customer service agent. Stay in this role for the whole
conversation: you are the customer, never the agent, and never an AI.

- Write one message at a time, short and natural, as a real customer would.
- Follow the scenario below. Do not invent facts it does not give you: what it does not say, you
  do not know.
- Do not recite the scenario. Give information only when the agent asks for it, a piece at a time.
- Answer only with what you, the customer, would say.{tools_rule}
- When your goal is reached, or nothing more can be done, end the conversation by writing
  {stop} on its own. If you are transferred to a human agent, write {transfer}. If the scenario
  does not tell you enough to go on, write {out_of_scope}."""

TOOLS_RULE = """
- You have tools of your own (your device, your documents). Use one only when the agent asks you
  to do or check something, or when you need it to answer. A tool call and a message are separate
  turns: the agent sees only your messages, never your tool calls."""


class UserInstructions(BaseModel):
    """tau2's structured user instructions (``user_scenario.instructions``)."""

    model_config = ConfigDict(extra="ignore")

    reason_for_call: str
    known_info: str | None = None
    unknown_info: str | None = None
    task_instructions: str | None = None
    domain: str | None = None

    def render(self) -> str:
        parts = []
        if self.domain:
            parts.append(f"Domain: {self.domain}")
        parts.append("Reason for contact:\n" + textwrap.indent(self.reason_for_call, "    "))
        if self.known_info:
            parts.append("What you know:\n" + textwrap.indent(self.known_info, "    "))
        if self.unknown_info:
            parts.append("What you do not know:\n" + textwrap.indent(self.unknown_info, "    "))
        if self.task_instructions:
            parts.append("How to behave:\n" + textwrap.indent(self.task_instructions, "    "))
        return "\n".join(parts)


class UserScenario(BaseModel):
    """tau2's ``user_scenario``: a persona and the instructions (structured, or free text)."""

    model_config = ConfigDict(extra="ignore")

    persona: str | None = None
    instructions: UserInstructions | str

    def render(self) -> str:
        out = []
        if self.persona:
            out.append("Persona:\n" + textwrap.indent(self.persona, "    "))
        text = self.instructions if isinstance(self.instructions, str) else self.instructions.render()
        out.append("Instructions:\n" + textwrap.indent(text, "    "))
        return "\n".join(out)


class LLMUser(UserSimulator):
    """A simulated user played by a language model.

    ``scenario`` defaults to the task's ``data["user_scenario"]`` (tau2's field). User-side
    tools are given with ``tools=`` or bound per episode with :meth:`bind_tools`.
    """

    def __init__(
        self,
        llm: SimulatorLLM | SimulatorLLMConfig | None = None,
        *,
        scenario: UserScenario | None = None,
        tools: Sequence[Tool] = (),
        greeting: str = "Hi! How can I help you today?",
        guidelines: str = GUIDELINES,
        stop_markers: Sequence[str] = (STOP, TRANSFER, OUT_OF_SCOPE),
        break_patterns: Sequence[str] = DEFAULT_BREAK_PATTERNS,
        max_tool_rounds: int = 5,
        temperature: float | None = None,
    ) -> None:
        self.llm = llm if isinstance(llm, SimulatorLLM) else SimulatorLLM(llm, name="user simulator")
        self.scenario = scenario
        self.greeting = greeting
        self.guidelines = guidelines
        self.stop_markers = tuple(stop_markers)
        self.break_patterns = tuple(break_patterns)
        self.max_tool_rounds = max_tool_rounds
        self.temperature = temperature
        self._tools: dict[str, Tool] = {t.name: t for t in tools}
        self._ctx: ToolContext | None = None
        self.history: list[dict[str, Any]] = []
        self._check = CharacterCheck(patterns=self.break_patterns)
        self._turns = 0
        self._stopped_by: str | None = None
        self._tool_log: list[dict[str, JsonValue]] = []

    def bind_tools(self, tools: Sequence[Tool], ctx: ToolContext | None) -> None:
        """Give the user its tools for this episode, running on ``ctx``'s state."""
        self._tools = {t.name: t for t in tools}
        self._ctx = ctx

    def system_prompt(self, scenario: UserScenario) -> str:
        rule = TOOLS_RULE if self._tools else ""
        head = self.guidelines.format(tools_rule=rule, stop=STOP, transfer=TRANSFER, out_of_scope=OUT_OF_SCOPE)
        return f"{head}\n\n<scenario>\n{scenario.render()}\n</scenario>"

    async def reset(self, task: Task) -> Message | None:
        scenario = self.scenario
        if scenario is None:
            raw = task.data.get("user_scenario")
            if raw is None:
                raise ValueError(f"task {task.id!r} has no data['user_scenario'] for the LLMUser: give the task a "
                                 "user_scenario ({'persona': ..., 'instructions': {...}}) or pass scenario=")
            try:
                scenario = UserScenario.model_validate(raw)
            except ValidationError as exc:
                raise ValueError(f"task {task.id!r}: data['user_scenario'] is not a user scenario: {exc}") from exc
        secret = scenario.instructions if isinstance(scenario.instructions, str) else scenario.instructions.render()
        self._check = CharacterCheck(secret=secret, patterns=self.break_patterns)
        self.history = [{"role": "system", "content": self.system_prompt(scenario)}]
        self._turns = 0
        self._stopped_by = None
        self._tool_log = []
        history = task.initial_messages()
        if history:
            # The task opens the conversation itself (a prompt, or tau2's message history); the user
            # model continues from there, seeing its own past words and the agent's.
            for m in history:
                if m.role == "user" and m.text:
                    self.history.append({"role": "assistant", "content": m.text})
                elif m.role == "assistant" and agent_says(m):
                    self.history.append({"role": "user", "content": agent_says(m)})
            if history[-1].role != "assistant":
                return None
            turn = await self._speak()  # the history ends with the agent: the user answers first
            return turn.message
        self.history.append({"role": "user", "content": self.greeting})
        turn = await self._speak()
        return turn.message

    async def respond(self, messages: list[Message]) -> UserTurn:
        words = "\n\n".join(new_agent_words(messages)) or "(the agent did not say anything)"
        self.history.append({"role": "user", "content": words})
        return await self._speak()

    def _validate(self, reply: ChatReply) -> str | None:
        if reply.tool_calls and self._tools:
            return None
        text = reply.content
        for marker in self.stop_markers:
            text = text.replace(marker, "")
        if not text.strip() and any(m in reply.content for m in self.stop_markers):
            return None  # a bare stop marker is a fine way to end
        return self._check(reply.content)

    async def _speak(self) -> UserTurn:
        tools = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                   "parameters": t.parameters}} for t in self._tools.values()]
        for _ in range(self.max_tool_rounds + 1):
            reply = await self.llm.generate(list(self.history), purpose="user_turn", tools=tools or None,
                                            validate=self._validate, temperature=self.temperature)
            if reply.tool_calls and self._tools:
                await self._run_tools(reply)
                continue
            return self._finish(reply.content)
        # The user kept calling tools: end its turn with what it has, as an out-of-scope stop.
        return self._finish(OUT_OF_SCOPE)

    async def _run_tools(self, reply: ChatReply) -> None:
        self.history.append({"role": "assistant", "content": reply.content or None, "tool_calls": [
            {"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": c.raw if c.error and c.raw is not None
                          else json.dumps(c.arguments, ensure_ascii=False)}}
            for c in reply.tool_calls]})
        for call in reply.tool_calls:
            content, is_error = await self._call_tool(call.name, dict(call.arguments), call.error)
            self._tool_log.append({"name": call.name, "arguments": call.arguments, "result": content,
                                   "is_error": is_error})
            self.history.append({"role": "tool", "tool_call_id": call.id, "content": content})

    async def _call_tool(self, name: str, arguments: dict[str, Any], error: str | None) -> tuple[str, bool]:
        if error is not None:
            return f"Error: your tool call could not be parsed: {error}", True
        tool = self._tools.get(name)
        if tool is None:
            return f"Error: there is no tool named {name!r}. Your tools: {', '.join(sorted(self._tools))}", True
        ctx = self._ctx or ToolContext(task=Task(id="user"), episode_id="user")
        try:
            out = await tool(ctx, arguments)
        except ToolArgumentError as exc:
            return f"Error: {exc}", True
        except Exception as exc:  # noqa: BLE001 - the user's tool failing is an observation for the user
            return f"Error: {type(exc).__name__}: {exc}", True
        text = out.content if isinstance(out.content, str) else json.dumps(
            [p.model_dump() for p in out.content], ensure_ascii=False)
        return text, out.is_error

    def _finish(self, text: str) -> UserTurn:
        self.history.append({"role": "assistant", "content": text})
        self._turns += 1
        stopped = next((m for m in self.stop_markers if m in text), None)
        visible = text
        for marker in self.stop_markers:
            visible = visible.replace(marker, "")
        visible = visible.strip()
        if stopped is not None:
            self._stopped_by = stopped
        message = Message.user(visible) if visible else None
        return UserTurn(message=message, done=stopped is not None, state=self.state)

    async def aclose(self) -> None:
        await self.llm.aclose()

    @property
    def state(self) -> dict[str, JsonValue]:
        out: dict[str, JsonValue] = {"user_turns": self._turns}
        if self._stopped_by is not None:
            out["stopped_by"] = self._stopped_by
        if self._tool_log:
            out["user_tool_calls"] = list(self._tool_log)
        return out

