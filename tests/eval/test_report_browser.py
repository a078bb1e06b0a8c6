"""``traject view``: the static report, opened in a real headless Chromium."""

from __future__ import annotations

import io

import pytest

from traject.agents.store import TrajectoryStore
from traject.eval.view import write_report
from traject.types import ImagePart, Message, RewardResult, Status, Step, TextPart, ToolCall, ToolResult, Trajectory

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def gui_trajectory(png: str) -> Trajectory:
    """A GUI episode: two screenshots, a click at (150, 40) on the first, then typing."""
    shot1 = ImagePart(data=png, width=200, height=100)
    shot2 = ImagePart(data=png)
    click = Message.assistant("I will press Submit.", tool_calls=[ToolCall(id="c1", name="click", arguments={"x": 150, "y": 40})],
                              reasoning="The Submit button is on the right.")
    clicked = Message.tool([TextPart(text="clicked"), shot2], tool_call_id="c1", name="click")
    typing = Message.assistant("", tool_calls=[ToolCall(id="c2", name="type_text", arguments={"text": "hello"})])
    typed = Message.tool("typed", tool_call_id="c2", name="type_text")
    opening = [Message.system("You operate a GUI."), Message.user([TextPart(text="Submit the form."), shot1])]
    # The shapes the reward library writes: a WeightedSum of a checklist and an emotion reward
    # (each term's info under its name), gated totals among the components.
    reward = RewardResult(
        total=0.75, success=True, per_turn=[0.5], per_step=[0.5, 0.0],
        components={"checklist": 0.5, "gated_total": 0.4, "ungated_total": 0.9},
        info={
            "checklist": {"level": "trajectory", "judgements": [
                {"checklist": 0, "turn": 0, "step": 0, "item": "clicks the Submit button", "satisfied": True,
                 "source": "judge", "rationale": "The click at (150, 40) lands on Submit."},
                {"checklist": 0, "turn": 0, "step": 1, "item": "types a greeting", "satisfied": False,
                 "source": "judge", "rationale": "It typed hello but into the wrong field."},
            ]},
            "emotion": {"emotion_trace": [50.0, 70.0], "reasons": ["pleased by the quick answer"]},
        },
    )
    return Trajectory(
        task_id="gui-form", env="gui", messages=[*opening, click, clicked, typing, typed],
        steps=[Step(index=0, action=click, observations=[clicked],
                    tool_results=[ToolResult(call_id="c1", name="click", content="clicked", duration_s=0.02)]),
               Step(index=1, action=typing, observations=[typed], done=True, reward=0.1,
                    tool_results=[ToolResult(call_id="c2", name="type_text", content="typed")])],
        reward=reward, status=Status.COMPLETED,
    )


@pytest.mark.browser
@pytest.mark.anyio
async def test_report_in_chromium(make_run, helpers, tmp_path):
    from PIL import Image
    from playwright.async_api import async_playwright

    run = await make_run("mixed", helpers.TokenCounting(helpers.half_right, 50), n=4, samples=2)
    with TrajectoryStore(run / "trajectories.jsonl") as store:
        store.append_sync(gui_trajectory(helpers.png(200, 100)))
    index = write_report(run)
    failures = sum(1 for t in TrajectoryStore.read(run / "trajectories.jsonl") if t.reward and not t.reward.success)
    assert 0 < failures < 8

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 900})
            await page.goto(index.as_uri())
            rows = page.locator("#trajectories tbody tr")
            assert await rows.count() == 9
            assert "success (95% CI)" in await page.inner_text("table.summary")
            await page.fill("#q", "gui")
            assert await page.inner_text("#shown") == "1"
            await page.fill("#q", "")
            await page.select_option("#outcome", "failure")
            assert await page.inner_text("#shown") == str(failures)
            for r in await rows.all():
                if await r.is_visible():
                    assert await r.get_attribute("data-outcome") == "failure"
            await page.select_option("#outcome", "")
            await page.click("text=gui-form")
            await page.wait_for_selector("section.turn")

            assert await page.locator("section.turn").count() == 2
            assert await page.inner_text("#turn-1 .tool-name") == "click"
            turn1 = await page.inner_text("#turn-1")
            assert "The click at (150, 40) lands on Submit." in turn1 and "reward at this step 0.5" in turn1
            turn2 = await page.inner_text("#turn-2")
            assert "into the wrong field" in turn2 and "user turn 1 reward 0.5" in turn2
            reward = await page.inner_text("#reward")
            assert "gated total 0.4" in reward and "ungated total 0.9" in reward
            emotion = await page.inner_text("#emotion")
            assert "pleased by the quick answer" in emotion and "70" in emotion
            mark = page.locator("#turn-1 svg.overlay circle.mark")
            assert (await mark.get_attribute("cx"), await mark.get_attribute("cy")) == ("150", "40")

            # The marker is drawn where the click was: red at (150, 40) of the screenshot, white elsewhere.
            shot = page.locator("#turn-1 .action-shot .shot")
            box = await shot.bounding_box()
            assert box is not None and round(box["width"]) == 200
            img = Image.open(io.BytesIO(await shot.screenshot())).convert("RGB")
            r, g, b = img.getpixel((150, 40))
            assert r > 200 and g < 90 and b < 90, (r, g, b)
            assert img.getpixel((30, 80)) == (255, 255, 255)
            await page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        finally:
            await browser.close()
