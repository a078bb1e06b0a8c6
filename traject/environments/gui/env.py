"""GuiEnv: a task page in headless Chromium; the policy sees screenshots (and/or DOM text) and
acts with mouse and keyboard actions.

One episode = one browser context in the worker's shared Chromium. Actions come as tool calls
(each answered by a short tool message) or as text (``Action: click(120, 45)``, or BTL's
``<link>`` block). After the actions of a turn the env sends one user message: what happened,
the DOM/accessibility text if configured, and the screenshot as an ImagePart. The episode ends
when the page ends it (``core.endEpisode``), on ``done``, or at ``max_turns``.

Every step records, in ``step.info["gui"]``, the actions as executed (name, arguments, the
point or element box acted on, error) and the page's state, so that rewards and the replay
renderer work from the trajectory alone.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from traject.environments.base import Env, EnvSpec, StepResult
from traject.environments.gui.actions import ActionError, GuiActions
from traject.environments.gui.browser import BrowserError, browser_pool, import_playwright
from traject.environments.gui.config import GuiConfig
from traject.environments.gui.dom import format_dom
from traject.environments.gui.page import PageState, PageTarget, TaskPage, is_closed_error
from traject.environments.gui.page_reward import PageReward
from traject.environments.gui.task import GuiTaskData
from traject.environments.gui.text_actions import TextActionError, parse_text_actions
from traject.rewards.base import Reward
from traject.tools.base import Tool, ToolArgumentError, ToolOutput
from traject.tools.context import ToolContext
from traject.types import (ContentPart, InfraError, Message, Task, TextPart, Timings, ToolCall, ToolResult,
                           new_id)

SYSTEM_PROMPT = """You operate a web page through its screen to do the task you are given.
Each observation shows {what}. The screen is {w}x{h} pixels; x grows to the right and y downwards from the top-left corner.
Act by calling one of the actions as a tool, or by ending your reply with a line such as
Action: click(120, 45)
Actions: {actions}.
When the task is finished, call done(answer) (with the answer when the task asks a question)."""


class GuiEnv(Env):
    def __init__(self, config: GuiConfig | None = None, *, name: str = "gui", reward: Reward | None = None,
                 **overrides: Any) -> None:
        if config is not None and overrides:
            config = config.model_copy(update=overrides)
            config = GuiConfig.model_validate(config.model_dump())
        self.config = config or GuiConfig.model_validate(overrides)
        template = GuiActions(element_actions=self.config.with_element_actions)
        self.spec = EnvSpec(name=name, description="web pages in headless Chromium",
                            max_turns=self.config.max_turns, tools=[t.schema for t in template.tools()],
                            system_prompt=self.config.system_prompt)
        self.reward = reward if reward is not None else PageReward()
        self._params = {t.name: list(t.parameters.get("properties", {})) for t in template.tools()}
        self.page: TaskPage | None = None
        self.data: GuiTaskData | None = None
        self.target: PageTarget | None = None
        self.ctx: ToolContext | None = None
        self._tools: dict[str, Tool] = {}
        self._turns = 0
        self.last_state = PageState()

    # --- episode -----------------------------------------------------------------------------

    async def reset(self, task: Task) -> list[Message]:
        await self.aclose()
        try:
            data = GuiTaskData.model_validate(task.data)
        except ValueError as exc:
            raise ValueError(f"task {task.id!r}: its data is not a GUI task ({exc}); a GUI task's data "
                             "needs `page` (a file under `root`) or `url`, and may set `seed`") from exc
        self.page = await TaskPage.open(browser_pool(self.config.browser), self.config, data)
        if data.image_size is not None and tuple(data.image_size) != self.page.screen.size:
            await self.aclose()
            raise ValueError(f"task {task.id!r}: data.image_size {list(data.image_size)} differs from the "
                             f"screen, {list(self.page.screen.size)} pixels: fix the task's image_size, or "
                             "the env's viewport/device_scale_factor")
        self.data = data
        actions = GuiActions(self.page, self.config, element_actions=self.config.with_element_actions)
        self._tools = {t.name: t for t in actions.tools()}
        self.ctx = ToolContext(task=task, episode_id=new_id("ep_"))
        self._turns = 0
        self.last_state = PageState()
        async with _observing():
            utterance = await self.page.utterance()
        messages = [Message.system(self.system_prompt())]
        messages.extend(task.initial_messages())
        messages.append(await self._observation([f"Task: {utterance}"]))
        return messages

    def system_prompt(self) -> str:
        if self.config.system_prompt is not None:
            return self.config.system_prompt
        w, h = self.page.screen.size if self.page else (self.config.viewport_width, self.config.viewport_height)
        what = {"screenshot": "a screenshot", "dom": "the page's elements as text, each with an [id] and its "
                "box (x, y, width, height)", "axtree": "the page's accessibility tree"}
        parts = [what[p] for p in self.config.observation]
        signatures = [f"{name}({', '.join(params)})" for name, params in self._params.items()]
        return SYSTEM_PROMPT.format(what=" and ".join(parts), w=w, h=h, actions=", ".join(signatures))

    async def step(self, action: Message) -> StepResult:
        if self.page is None or self.ctx is None:
            raise RuntimeError("step() before reset()")
        self._turns += 1
        t0 = time.perf_counter()
        target = self.target
        native = bool(action.tool_calls)
        lines: list[str] = []
        format_errors = 0
        if native:
            calls = list(action.tool_calls)
        else:
            try:
                calls = parse_text_actions(action.text, self._params)
            except TextActionError as exc:
                calls = []
                format_errors = 1
                lines.append(f"Error: {exc}")
        results: list[ToolResult] = []
        records: list[dict[str, Any]] = []
        final_answer: str | None = None
        # The page's own timer may have ended the episode while the policy was thinking: then
        # nothing is run (MiniWoB's START cover is up, and a click on it would start a new one).
        async with _observing():
            terminated = ended_before = (await self.page.state()).done
        for i, call in enumerate(calls):
            if terminated:
                why = "the page had ended the episode before this turn" if ended_before else \
                    "the episode had already ended"
                results.append(ToolResult(call_id=call.id, name=call.name, is_error=True, error_kind="raised",
                                          content=f"Error: not run: {why}"))
                continue
            result, output = await self._run(call)
            results.append(result)
            records.append(_record(call, result))
            if result.error_kind == "format":
                format_errors += 1
            if output is not None and output.done:
                terminated = True
                final_answer = output.final_answer
            elif i < len(calls) - 1:
                # Later calls must not act on a page that has ended its episode.
                async with _observing():
                    terminated = (await self.page.state()).done
        if calls and not ended_before:
            await self.page.settle(self.config.settle_ms)
        async with _observing():
            state = await self.page.state()
        self.last_state = state
        terminated = terminated or state.done
        if self.data is not None and self.data.grounding:
            terminated = True
            point = next((r["point"] for r in records if r.get("ok") and "point" in r), None)
            final_answer = json.dumps(point) if point is not None else ""
        if not native:
            lines.extend(f"{r.name}: {r.content}" for r in results)
        if state.done:
            lines.append(f"The page ended the episode (reward {state.raw_reward:g}).")
        elif final_answer is not None:
            lines.append("You ended the episode.")
        observations = [Message.tool(r.content, tool_call_id=r.call_id, name=r.name) for r in results] if native else []
        observations.append(await self._observation(lines or ["The screen after your action:"]))
        truncated = not terminated and self._turns >= self.config.max_turns
        w, h = self.page.screen.size
        gui: dict[str, Any] = {"actions": records, "page": state.model_dump(), "screen": [w, h]}
        if target is not None:
            gui["target"] = target.model_dump(mode="json")
        info = {"gui": gui}
        return StepResult(observations=observations, reward=state.reward if state.done else 0.0,
                          terminated=terminated, truncated=truncated, tool_results=results,
                          format_errors=format_errors, final_answer=final_answer, info=info,
                          timings=Timings(tools_s=time.perf_counter() - t0))

    async def _run(self, call: ToolCall) -> tuple[ToolResult, ToolOutput | None]:
        t0 = time.perf_counter()

        def error(kind: str, text: str) -> tuple[ToolResult, None]:
            return ToolResult(call_id=call.id, name=call.name, content=f"Error: {text}", is_error=True,
                              error_kind=kind, duration_s=time.perf_counter() - t0), None  # type: ignore[arg-type]

        if call.error is not None:
            return error("format", f"your action could not be parsed: {call.error}")
        tool = self._tools.get(call.name)
        if tool is None:
            return error("unknown_tool", f"there is no action named {call.name!r}. Actions: "
                         + ", ".join(sorted(self._tools)))
        assert self.ctx is not None
        limit = self.config.action_timeout_s + (self.config.max_wait_s if call.name == "wait" else 0) + 5
        try:
            with anyio.fail_after(limit):
                output = await tool(self.ctx, dict(call.arguments))
        except ToolArgumentError as exc:
            return error("arguments", str(exc))
        except ActionError as exc:
            return error("raised", str(exc))
        except TimeoutError:
            return error("timeout", f"{call.name} did not finish within {limit:g} s")
        except InfraError:
            raise
        except Exception as exc:  # noqa: BLE001 - an action's bug is an observation, not a crash
            return error("raised", f"{call.name} failed: {type(exc).__name__}: {exc}")
        return ToolResult(call_id=call.id, name=call.name, content=output.content, is_error=output.is_error,
                          metadata=output.metadata, duration_s=time.perf_counter() - t0), output

    async def _observation(self, lines: list[str]) -> Message:
        assert self.page is not None
        text = list(lines)
        content: list[ContentPart] = []
        async with _observing():
            if "dom" in self.config.observation:
                text += ["Elements:", format_dom(await self.page.dom())]
            if "axtree" in self.config.observation:
                text += ["Accessibility tree:", await self.page.axtree()]
            content.append(TextPart(text="\n".join(text)))
            if "screenshot" in self.config.observation:
                content.append(await self.page.screenshot_part())
            self.target = await self.page.target()
        return Message.user(content)

    async def aclose(self) -> None:
        page, self.page = self.page, None
        self.ctx = None
        self.target = None
        if page is not None:
            with anyio.CancelScope(shield=True):
                await page.close()


@asynccontextmanager
async def _observing() -> AsyncIterator[None]:
    """Reading the page must not fail; when it does, the browser is broken: an infra error."""
    api = import_playwright()
    try:
        yield
    except api.Error as exc:
        kind = "died" if is_closed_error(exc) else "failed"
        raise BrowserError(f"reading the page {kind}: {exc}") from exc


def _record(call: ToolCall, result: ToolResult) -> dict[str, Any]:
    record: dict[str, Any] = {"name": call.name, "arguments": dict(call.arguments), "ok": not result.is_error}
    if result.is_error:
        record["error"] = result.content if isinstance(result.content, str) else ""
    for key in ("point", "box", "to"):
        if key in result.metadata:
            record[key] = result.metadata[key]
    return record
