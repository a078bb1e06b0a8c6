"""ToolEnv: an episode in which the policy calls tools, and optionally talks to a simulated user."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Literal

import anyio

from traject.environments.base import Env, EnvSpec, StepResult
from traject.environments.users.base import UserSimulator
from traject.tools.base import Tool, ToolArgumentError, ToolOutput
from traject.tools.context import ToolContext
from traject.tools.toolset import Toolset
from traject.types import (
    ContentPart,
    InfraError,
    Message,
    Task,
    TextPart,
    Timings,
    ToolCall,
    ToolResult,
    ToolSchema,
    new_id,
)

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from traject.rewards.base import Reward
    from traject.sandboxes.base import Sandbox

ToolSpec = Tool | Toolset | type[Toolset]
SandboxFactory = Callable[[Task], Awaitable["Sandbox"]]


class ToolEnv(Env):
    """Tools, limits, and an optional simulated user.

    * Each assistant message's tool calls run (concurrently when ``parallel_tool_calls``), each
      under ``tool_timeout_s``; every call gets exactly one tool message back.
    * A malformed call, an unknown tool, arguments that fail the schema, a tool that raises or
      times out: an error observation the model reads. The episode goes on.
    * A reply without tool calls goes to the simulated user if there is one; otherwise it ends
      the episode and its text is the final answer (``on_text_reply="end"``), or the model is
      reminded to use its tools (``"nudge"``).
    * A tool output with ``done`` ends the episode (``submit``).
    * CM2 early termination: when the env's reward judges turns as they end (a
      ``ChecklistReward``'s ``end_of_turn``) and the model's reply ends a user turn in which a
      required checklist item failed, the episode ends there instead of going to the user; the
      step's ``info["early_termination"]`` records the turn and the failed items. Control:
      ``early_termination`` (None: as the checklist's config says, which in CM2 is to end; False:
      never check; True: end whenever the turn's check fails).
    * A tool's output is cut to ``max_output_chars`` characters per call (None: no cap), with a
      marker saying how much was cut, so one huge output cannot overflow the model's context.
    * An ``InfraError`` from a tool, the sandbox or the user propagates: the runner marks the
      trajectory ``infra_error``.
    """

    def __init__(
        self,
        tools: Sequence[ToolSpec] = (),
        *,
        name: str = "tool_env",
        system_prompt: str | None = None,
        max_turns: int = 10,
        tool_timeout_s: float = 60.0,
        parallel_tool_calls: bool = True,
        user: UserSimulator | None = None,
        sandbox: SandboxFactory | None = None,
        reward: Reward | None = None,
        on_text_reply: Literal["end", "nudge"] = "end",
        early_termination: bool | None = None,
        max_output_chars: int | None = 16_000,
    ) -> None:
        if max_turns < 1:
            raise ValueError(f"max_turns must be at least 1, got {max_turns}")
        self._tool_specs = list(tools)
        self.system_prompt = system_prompt
        self.max_turns = max_turns
        self.tool_timeout_s = tool_timeout_s
        self.parallel_tool_calls = parallel_tool_calls
        self.user = user
        self.sandbox_factory = sandbox
        self.reward = reward
        self.on_text_reply = on_text_reply
        self.early_termination = early_termination
        self._results: list[ToolResult] = []
        if max_output_chars is not None and max_output_chars < 1:
            raise ValueError(f"max_output_chars must be at least 1 (or None), got {max_output_chars}")
        self.max_output_chars = max_output_chars
        self.spec = EnvSpec(name=name, max_turns=max_turns, system_prompt=system_prompt,
                            tools=[t.schema for t in self._static_tools()])
        self.messages: list[Message] = []
        self.ctx: ToolContext | None = None
        self._toolsets: list[Toolset] = []
        self._tools: dict[str, Tool] = {}
        self._schemas: list[ToolSchema] | None = None
        self._turns = 0

    def _static_tools(self) -> list[Tool]:
        out: list[Tool] = []
        for spec in self._tool_specs:
            if isinstance(spec, Tool):
                out.append(spec)
            elif isinstance(spec, Toolset):
                out.extend(spec.tools())
            elif isinstance(spec, type) and issubclass(spec, Toolset):
                out.extend(spec.declared_tools() or [])  # a class's tools, without making one
        return out

    @property
    def tools(self) -> list[ToolSchema]:
        if self._tools:
            if self._schemas is None:
                self._schemas = [t.schema for t in self._tools.values()]
            return self._schemas
        return self.spec.tools

    def system_message(self, task: Task) -> Message | None:
        """The system prompt for ``task``; override to make it depend on the task."""
        return Message.system(self.system_prompt) if self.system_prompt else None

    async def reset(self, task: Task) -> list[Message]:
        await self.aclose()
        sandbox = await self.sandbox_factory(task) if self.sandbox_factory else None
        self.ctx = ToolContext(task=task, episode_id=new_id("ep_"), sandbox=sandbox)
        self._turns = 0
        self._results = []
        self._tools = {}
        self._schemas = None
        for spec in self._tool_specs:
            if isinstance(spec, Tool):
                tools = [spec]
            else:
                toolset = spec() if isinstance(spec, type) else spec
                self._toolsets.append(toolset)
                await toolset.setup(self.ctx)
                tools = toolset.tools()
            for t in tools:
                if t.name in self._tools:
                    raise ValueError(f"two tools named {t.name!r} in env {self.spec.name!r}")
                self._tools[t.name] = t
        messages: list[Message] = []
        if (system := self.system_message(task)) is not None:
            messages.append(system)
        messages.extend(task.initial_messages())
        if self.user is not None:
            opening = await self.user.reset(task)
            if opening is not None:
                messages.append(opening)
        if not any(m.role == "user" for m in messages):
            raise ValueError(f"task {task.id!r} gives the policy nothing to respond to: it has no "
                             "prompt and the env has no simulated user that opens")
        self.messages = list(messages)
        return messages

    async def step(self, action: Message) -> StepResult:
        if self.ctx is None:
            raise RuntimeError("step() before reset()")
        self._turns += 1
        self.messages.append(action)
        timings = Timings()
        if action.tool_calls:
            t0 = time.perf_counter()
            outputs = await self._run_calls(action.tool_calls)
            timings.tools_s = time.perf_counter() - t0
            results = [r for r, _ in outputs]
            self._results.extend(results)
            observations = [Message.tool(r.content, tool_call_id=r.call_id, name=r.name) for r in results]
            done_outputs = [o for _, o in outputs if o is not None and o.done]
            terminated = bool(done_outputs)
            final_answer = next((o.final_answer for o in done_outputs if o.final_answer is not None), None)
            result = StepResult(
                observations=observations,
                reward=sum(o.reward or 0.0 for _, o in outputs if o is not None),
                terminated=terminated,
                tool_results=results,
                format_errors=sum(1 for r in results if r.error_kind == "format"),
                final_answer=final_answer,
                timings=timings,
            )
        elif self.user is not None and (ended := await self._turn_check()) is not None:
            result = ended
        elif self.user is not None:
            t0 = time.perf_counter()
            turn = await self.user.respond(list(self.messages))
            timings.user_s = time.perf_counter() - t0
            result = StepResult(
                observations=[turn.message] if turn.message is not None else [],
                terminated=turn.done,
                info={"user_state": turn.state} if turn.state else {},
                timings=timings,
            )
        elif self.on_text_reply == "nudge":
            result = StepResult(observations=[Message.user(
                "Please continue: use one of your tools, or call the tool that submits your answer.")])
        else:
            result = StepResult(terminated=True, final_answer=action.text)
        if not result.terminated and self._turns >= self.max_turns:
            result.truncated = True
        self.messages.extend(result.observations)
        return result

    async def _turn_check(self) -> StepResult | None:
        """CM2's end-of-turn check of the user turn the model's reply just ended: a StepResult
        that ends the episode, or None to go on."""
        check_fn = getattr(self.reward, "end_of_turn", None)
        if self.early_termination is False or check_fn is None or self.ctx is None:
            return None
        t0 = time.perf_counter()
        try:
            check = await check_fn(self.ctx.task, list(self.messages), list(self._results))
        except Exception as exc:  # noqa: BLE001 - the judge failed: no early end; the final reward says more
            log.warning("env %s: the end-of-turn check failed (%s: %s); the episode goes on",
                        self.spec.name, type(exc).__name__, exc)
            return None
        end = check.end_episode if self.early_termination is None else not check.passed
        if not end:
            return None
        return StepResult(terminated=True, timings=Timings(reward_s=time.perf_counter() - t0),
                          info={"early_termination": {"turn": check.turn, "failed_required": list(check.failed_required),
                                                      "reason": "a required checklist item failed at the end of "
                                                                f"turn {check.turn}"}})

    async def _run_calls(self, calls: list[ToolCall]) -> list[tuple[ToolResult, ToolOutput | None]]:
        outputs: list[tuple[ToolResult, ToolOutput | None] | None] = [None] * len(calls)

        async def run(i: int, call: ToolCall) -> None:
            outputs[i] = await self._run_call(call)

        if self.parallel_tool_calls and len(calls) > 1:
            async with anyio.create_task_group() as tg:
                for i, call in enumerate(calls):
                    tg.start_soon(run, i, call)
        else:
            for i, call in enumerate(calls):
                await run(i, call)
        return [o for o in outputs if o is not None]

    def _error(self, call: ToolCall, kind: str, text: str, t0: float) -> tuple[ToolResult, None]:
        return ToolResult(call_id=call.id, name=call.name, content=cap_content(f"Error: {text}", self.max_output_chars),
                          is_error=True,
                          error_kind=kind, duration_s=time.perf_counter() - t0), None  # type: ignore[arg-type]

    async def _run_call(self, call: ToolCall) -> tuple[ToolResult, ToolOutput | None]:
        t0 = time.perf_counter()
        if call.error is not None:
            return self._error(call, "format", f"your tool call could not be parsed: {call.error}", t0)
        tool = self._tools.get(call.name)
        if tool is None:
            available = ", ".join(sorted(self._tools)) or "(none)"
            return self._error(call, "unknown_tool",
                               f"there is no tool named {call.name!r}. Available tools: {available}", t0)
        assert self.ctx is not None
        timeout = tool.timeout_s if tool.timeout_s is not None else self.tool_timeout_s
        try:
            with anyio.fail_after(timeout):
                output = await tool(self.ctx, dict(call.arguments))
        except ToolArgumentError as exc:
            return self._error(call, "arguments", str(exc), t0)
        except TimeoutError:
            return self._error(call, "timeout", f"tool {call.name!r} did not finish within {timeout:g} s "
                               "and was cancelled", t0)
        except InfraError:
            raise
        except Exception as exc:  # noqa: BLE001 - a tool's bug is an observation, not a crash
            return self._error(call, "raised", f"tool {call.name!r} failed: {type(exc).__name__}: {exc}", t0)
        if output.infra_error:
            raise InfraError(f"tool {call.name!r} reported an infrastructure failure: {str(output.content)[:2000]}")
        result = ToolResult(call_id=call.id, name=call.name, content=cap_content(output.content, self.max_output_chars),
                            is_error=output.is_error, error_kind="raised" if output.is_error else None,
                            reward=output.reward, metadata=output.metadata,
                            duration_s=time.perf_counter() - t0)
        return result, output

    async def aclose(self) -> None:
        # No cancel scope of our own here: toolsets may exit task groups they entered at set-up,
        # which must stay strictly nested. The agent loop shields this call from cancellation.
        ctx, toolsets = self.ctx, self._toolsets
        self._toolsets = []
        errors: list[BaseException] = []
        for ts in reversed(toolsets):
            try:
                assert ctx is not None
                await ts.teardown(ctx)
            except Exception as exc:  # noqa: BLE001 - keep tearing the rest down
                errors.append(exc)
        if self.user is not None and ctx is not None:
            try:
                await self.user.aclose()
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
        if ctx is not None and ctx.sandbox is not None:
            sandbox, ctx.sandbox = ctx.sandbox, None
            try:
                await sandbox.aclose()
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
        if errors:
            raise InfraError(f"closing env {self.spec.name!r} failed: {errors[0]!r}") from errors[0]


def cap_text(text: str, limit: int | None) -> str:
    """``text`` cut to ``limit`` characters, ending with a marker that says how much was cut."""
    if limit is None or len(text) <= limit:
        return text
    return f"{text[:limit]}\n[output cut: {len(text) - limit:,} of {len(text):,} characters not shown]"


def cap_content(content: str | list[ContentPart], limit: int | None) -> str | list[ContentPart]:
    """A tool output's text cut to ``limit`` characters in all (images are kept)."""
    if limit is None or isinstance(content, str):
        return cap_text(content, limit)  # type: ignore[arg-type]
    total = sum(len(p.text) for p in content if isinstance(p, TextPart))
    if total <= limit:
        return content
    out: list[ContentPart] = []
    left = limit
    for part in content:
        if not isinstance(part, TextPart):
            out.append(part)
        elif left > 0:
            out.append(part if len(part.text) <= left else TextPart(text=part.text[:left]))
            left -= len(part.text)
    out.append(TextPart(text=f"[output cut: {total - limit:,} of {total:,} characters not shown]"))
    return out
