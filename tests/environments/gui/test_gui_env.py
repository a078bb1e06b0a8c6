"""The GUI env against real headless Chromium (the machine's, driven by Playwright)."""

from __future__ import annotations

import base64
import io

import anyio
import pytest

from traject.agents.gui_oracle import GuiOracle, oracle_actions
from traject.agents.loop import AgentLoop
from traject.agents.rollouts import Rollouts
from traject.agents.scripted import ScriptedPolicy
from traject.environments.gui import BrowserConfig, BrowserError, GuiEnv, browser_pool, gui_tasks, parse_dom
from traject.types import ImagePart, Message, Status, ToolCall

pytestmark = [pytest.mark.browser, pytest.mark.anyio]

DOM = ["screenshot", "dom"]


def call(name: str, **arguments) -> Message:
    return Message.assistant(tool_calls=[ToolCall(name=name, arguments=arguments)])


def dom_of(message: Message):
    return parse_dom(message.text.split("Elements:", 1)[1])


def utterance(messages: list[Message]) -> str:
    return next(line[6:] for m in messages for line in m.text.splitlines() if line.startswith("Task: "))


class MixedOracle(GuiOracle):
    """The oracle answering with tool calls, ``Action:`` text or BTL replies, by task."""

    STYLES = {"enter-text": "text", "drag-box": "text", "select-option": "btl", "navigate-tabs": "btl"}

    async def act(self, messages, tools):
        task = utterance(messages)
        self.style = next((s for name, s in self.STYLES.items() if name in KEYS and KEYS[name] in task), "tools")
        return await super().act(messages, tools)


KEYS = {"enter-text": "into the text field", "drag-box": "Drag the box", "select-option": "from the list",
        "navigate-tabs": "Go to Tab"}


@pytest.fixture(scope="module")
async def oracle_runs(browsers):
    tasks = gui_tasks()
    trajs = await Rollouts(MixedOracle(), lambda: GuiEnv(observation=DOM), concurrency=3).run(tasks)
    return tasks, {t.task_id: t for t in trajs}


async def test_oracle_solves_every_builtin_task(oracle_runs):
    tasks, by_task = oracle_runs
    assert len(tasks) >= 12
    for task in tasks:
        traj = by_task[task.id]
        assert traj.status is Status.COMPLETED, (task.id, traj.error)
        assert traj.reward is not None and traj.reward.total == 1.0, (task.id, traj.reward)
        assert traj.reward.success
        # Every observation after an action carries the screenshot.
        for step in traj.steps:
            assert step.observations[-1].images, task.id
        name = task.metadata["gui_task"]
        if name in MixedOracle.STYLES:
            # Text actions get one user message back: the results, then the screen.
            assert all(not s.action.tool_calls and len(s.observations) == 1 for s in traj.steps), name
        else:
            assert all(s.action.tool_calls and s.observations[-1].role == "user" for s in traj.steps), name


async def test_wrong_actions_score_lower(browsers):
    tasks = gui_tasks(names=["answer-question", "date-field", "two-step-form"])
    # Giving up at once never earns the page's reward.
    quitter = ScriptedPolicy([call("done", answer="no idea")])
    trajs = await Rollouts(quitter, lambda: GuiEnv(observation=DOM), concurrency=3).run(tasks)
    assert all(t.reward is not None and t.reward.total < 1.0 and not t.reward.success for t in trajs)
    assert {t.task_id.split("/")[1]: t.reward.total for t in trajs}["answer-question"] == -1.0

    # Clicking the wrong button fails the task: the page itself says so.
    env = GuiEnv(observation=DOM)
    task = gui_tasks(names=["click-button"])[0]
    messages = await env.reset(task)
    right = oracle_actions(utterance(messages), dom_of(messages[-1]))[0]
    wrong = next(e for e in dom_of(messages[-1]) if e.tag == "button" and e.center != (right.args["x"], right.args["y"]))
    traj = await AgentLoop(ScriptedPolicy([call("click", x=wrong.center[0], y=wrong.center[1])])).run(
        GuiEnv(observation=DOM), task)
    await env.aclose()
    assert traj.reward.total == -1.0 and traj.status is Status.COMPLETED
    assert traj.steps[-1].info["gui"]["page"]["reason"] == f"clicked {wrong.text}"


async def test_observations(browsers):
    from PIL import Image

    task = gui_tasks(names=["check-boxes"])[0]
    env = GuiEnv(observation=["screenshot", "dom", "axtree"])
    try:
        messages = await env.reset(task)
        assert messages[0].role == "system" and "360x360 pixels" in messages[0].text
        first = messages[-1]
        assert first.role == "user" and first.text.startswith("Task: Select ")
        assert "Elements:" in first.text and "Accessibility tree:" in first.text
        assert '- button "Submit"' in first.text
        shot = first.images[0]
        assert isinstance(shot, ImagePart) and (shot.width, shot.height) == (360, 360)
        assert Image.open(io.BytesIO(base64.b64decode(shot.data))).size == (360, 360)
        label = next(e for e in dom_of(first) if e.tag == "label")
        result = await env.step(call("click", x=label.center[0], y=label.center[1]))
        assert [m.role for m in result.observations] == ["tool", "user"]
        assert result.observations[0].text == f"clicked at ({label.center[0]}, {label.center[1]})"
        assert result.observations[1].images and not result.done
        after = next(e for e in dom_of(result.observations[1]) if e.id == label.id)
        assert after.checked is True and label.checked is False
        assert result.info["gui"]["actions"] == [{"name": "click", "arguments": {"x": label.center[0], "y": label.center[1]},
                                                  "ok": True, "point": list(label.center)}]
    finally:
        await env.aclose()


async def test_bad_actions_are_error_observations(browsers):
    task = gui_tasks(names=["enter-text"])[0]
    env = GuiEnv(observation=DOM, max_turns=20)
    try:
        messages = await env.reset(task)
        r = await env.step(Message.assistant("I am thinking about it."))
        assert r.format_errors == 1 and not r.done
        assert r.observations[0].text.startswith("Error: no action found") and r.observations[0].images
        r = await env.step(call("click", x=999, y=5))
        assert r.tool_results[0].is_error and "outside the screen" in r.tool_results[0].content
        r = await env.step(Message.assistant(tool_calls=[ToolCall(name="key", arguments={"name": "NoSuchKey"})]))
        assert r.tool_results[0].is_error and "Unknown key" in r.tool_results[0].content
        r = await env.step(call("fly", speed=3))
        assert r.tool_results[0].error_kind == "unknown_tool"
        r = await env.step(call("click", x="left", y=3))
        assert r.tool_results[0].error_kind == "arguments" and "'x'" in r.tool_results[0].content
        r = await env.step(Message.assistant(tool_calls=[ToolCall(name="click", error="not JSON", raw="click(")]))
        assert r.tool_results[0].error_kind == "format" and r.format_errors == 1
        r = await env.step(call("wait", seconds=60))
        assert r.tool_results[0].is_error and "0 to 5 seconds" in r.tool_results[0].content
        assert not r.done and r.observations[-1].images
        # The episode goes on and can still be solved; calls after the page's end are not run.
        while not r.done:
            actions = oracle_actions(utterance(messages), dom_of(r.observations[-1]))
            calls = [ToolCall(name=a.name, arguments=a.args) for a in actions]
            r = await env.step(Message.assistant(tool_calls=[*calls, ToolCall(name="wait", arguments={"seconds": 0})]))
        assert r.terminated and r.reward == 1.0
        assert r.tool_results[-1].content == "Error: not run: the episode had already ended"
    finally:
        await env.aclose()


async def test_element_id_actions(browsers):
    env = GuiEnv(observation=["dom"])
    assert "click_element" in [t.name for t in env.tools]
    assert "click_element" not in [t.name for t in GuiEnv().tools]
    try:
        messages = await env.reset(gui_tasks(names=["select-option"])[0])
        assert not messages[-1].images  # dom only: a text-only model's observation
        want = utterance(messages).split(" ")[1]
        dom = dom_of(messages[-1])
        select = next(e for e in dom if e.tag == "select")
        r = await env.step(call("select_element", element_id=select.id, option="Nobody"))
        assert r.tool_results[0].is_error and "no option 'Nobody'" in r.tool_results[0].content
        r = await env.step(call("type_element", element_id=999, text="x"))
        assert r.tool_results[0].is_error and "no element [999]" in r.tool_results[0].content
        r = await env.step(call("select_element", element_id=select.id, option=want))
        assert not r.tool_results[0].is_error and r.tool_results[0].metadata["box"]
        submit = next(e for e in dom if e.text == "Submit")
        r = await env.step(call("click_element", element_id=submit.id))
        assert r.terminated and r.reward == 1.0

        messages = await env.reset(gui_tasks(names=["enter-text"])[0])
        word = utterance(messages).split('"')[1]
        dom = dom_of(messages[-1])
        field = next(e for e in dom if e.tag == "input")
        await env.step(call("type_element", element_id=field.id, text=word))
        r = await env.step(call("click_element", element_id=next(e for e in dom if e.text == "Submit").id))
        assert r.reward == 1.0
    finally:
        await env.aclose()


async def test_seeded_pages_are_deterministic(browsers):
    env = GuiEnv()
    try:
        task = gui_tasks(names=["click-button"], n=3, seed=5)
        first = await env.reset(task[0])
        again = await env.reset(task[0])
        assert utterance(first) == utterance(again)
        assert first[-1].images[0].data == again[-1].images[0].data
        others = {utterance(first), *[utterance(await env.reset(t)) for t in task[1:]]}
        assert len(others) >= 2
    finally:
        await env.aclose()


async def test_page_time_limit(browsers):
    env = GuiEnv(page_time_limit_s=0.3)
    try:
        await env.reset(gui_tasks(names=["click-button"])[0])
        r = await env.step(call("wait", seconds=0.6))
        assert r.terminated and r.info["gui"]["page"] == {"done": True, "reward": -1.0, "raw_reward": -1.0,
                                                            "reason": "timed out"}
    finally:
        await env.aclose()


async def test_device_scale_factor(browsers):
    tasks = gui_tasks(names=["scroll-to-find"])
    trajs = await Rollouts(GuiOracle(), lambda: GuiEnv(observation=DOM, device_scale_factor=2)).run(tasks)
    for traj in trajs:
        assert traj.reward.total == 1.0, traj.task_id
        assert (traj.messages[-1].images[0].width, traj.messages[-1].images[0].height) == (720, 720)


async def test_browser_pool_shares_browsers_and_closes_them(browsers):
    config = BrowserConfig(browsers=2, idle_close_s=0)
    pool = browser_pool(config)
    contexts = [await pool.new_context() for _ in range(5)]
    assert pool.launches == 2 and pool.open_contexts == 5
    for c in contexts:
        await pool.close_context(c)
    assert pool.open_contexts == 0 and not pool._load  # closed when the last context went


async def test_bad_chromium_path_is_a_clear_error(browsers):
    env = GuiEnv(browser=BrowserConfig(chromium="/nonexistent/chromium"))
    with pytest.raises(BrowserError, match="/nonexistent/chromium"):
        await env.reset(gui_tasks(names=["click-button"])[0])


async def test_a_dead_browser_is_an_infra_error(browsers):
    config = BrowserConfig(idle_close_s=0, extra_args=("--lang=en-US",))  # a pool of its own

    async def kill_then_click(messages, tools):
        await env.page.context.browser.close()
        return call("click", x=5, y=5)

    env = GuiEnv(browser=config)
    traj = await AgentLoop(ScriptedPolicy(kill_then_click)).run(env, gui_tasks(names=["click-button"])[0])
    assert traj.status is Status.INFRA_ERROR and "browser" in traj.error
    assert not traj.trainable


async def test_replay_frames(oracle_runs, tmp_path):
    from PIL import Image

    from traject.environments.gui.replay import frame_png, frame_svg, gui_frames, render_trajectory

    _, by_task = oracle_runs
    for traj in (t for t in by_task.values() if t.task_id.split("/")[1] in ("drag-box", "check-boxes")):
        frames = gui_frames(traj)
        assert len(frames) == len(traj.steps) + 1 and frames[-1].final
        first = frames[0]
        assert first.image.data == traj.messages[1].images[0].data  # the screen the action was taken on
        png = Image.open(io.BytesIO(frame_png(first))).convert("RGB")
        assert png.size == (360, 360 + 22)
        x, y = first.actions[0]["point"]
        red = [png.getpixel((x + dx, y + dy)) for dx in range(-10, 11) for dy in range(-10, 11)]
        assert any(r > 200 and g < 60 and b < 90 for r, g, b in red)
        svg = frame_svg(first)
        assert svg.startswith("<svg") and "data:image/png;base64," in svg and first.caption.split("(")[0] in svg
        if first.actions[0]["name"] == "drag":
            assert "<line" in svg
        paths = render_trajectory(traj, tmp_path / traj.task_id.replace("/", "_"))
        assert [p.name for p in paths][-1].endswith("-final.png") and len(paths) == len(frames)


async def test_concurrent_episodes_are_isolated(browsers):
    """Two episodes at once on the same task do not see each other's input."""
    task = gui_tasks(names=["enter-text"])[0]
    envs = [GuiEnv(observation=DOM), GuiEnv(observation=DOM)]
    try:
        firsts = [await e.reset(task) for e in envs]
        field = next(e for e in dom_of(firsts[0][-1]) if e.tag == "input")
        async with anyio.create_task_group() as tg:
            tg.start_soon(envs[0].step, call("type_element", element_id=field.id, text="first"))
            tg.start_soon(envs[1].step, call("type_element", element_id=field.id, text="second"))
        values = [next(e for e in await env.page.dom() if e.tag == "input").value for env in envs]
        assert values == ["first", "second"]
    finally:
        for e in envs:
            await e.aclose()
