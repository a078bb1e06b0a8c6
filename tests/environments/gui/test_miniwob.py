"""The MiniWoB++ loader and driver on a directory in MiniWoB++'s layout (html/miniwob/*.html
loading ../core/core.js), with a core written here after MiniWoB++'s conventions: a START cover
until ``core.startEpisodeReal()``, ``Math.seedrandom``, WOB_* globals set by ``core.endEpisode``."""

from __future__ import annotations

import time

import anyio
import pytest

import traject
from traject.agents.loop import AgentLoop
from traject.agents.scripted import ScriptedPolicy
from traject.environments.gui import GuiEnv, parse_dom
from traject.types import Message, Status, ToolCall

pytestmark = [pytest.mark.browser, pytest.mark.anyio]

CORE_JS = """
var core = {};
Math.seedrandom = function (seed) {
  var s = 0, t = String(seed);
  for (var i = 0; i < t.length; i++) s = (s * 31 + t.charCodeAt(i)) >>> 0;
  Math.random = function () { s = (s * 1664525 + 1013904223) >>> 0; return s / 4294967296; };
};
core.randi = function (a, b) { return Math.floor(Math.random() * (b - a) + a); };
var WOB_REWARD_GLOBAL = 0, WOB_RAW_REWARD_GLOBAL = 0, WOB_REWARD_REASON = null, WOB_DONE_GLOBAL = false;
var WOB_EPISODE_ID = 0, WOB_TASK_READY = true, WOB_DATA_MODE = 'default';
core.EPISODE_MAX_TIME = 10000;
core.EP_TIMER = null;
core.setDataMode = function (m) { WOB_DATA_MODE = m; };
core.startEpisode = function () {
  var c = document.getElementById('sync-task-cover');
  if (!c) { c = document.createElement('div'); c.id = 'sync-task-cover'; c.textContent = 'START';
            c.onclick = core.startEpisodeReal; document.body.appendChild(c); }
  c.style.display = 'block';
};
core.startEpisodeReal = function () {
  genProblem();
  WOB_DONE_GLOBAL = false; WOB_REWARD_GLOBAL = 0; WOB_RAW_REWARD_GLOBAL = 0;
  document.getElementById('sync-task-cover').style.display = 'none';
  core.ept0 = new Date().getTime();
  core.EP_TIMER = setTimeout(function () { core.endEpisode(-1, false, 'timed out'); }, core.EPISODE_MAX_TIME);
};
core.endEpisode = function (reward, timeProportional, reason) {
  if (core.EP_TIMER === null) return;
  clearTimeout(core.EP_TIMER); core.EP_TIMER = null;
  WOB_RAW_REWARD_GLOBAL = reward; WOB_REWARD_REASON = reason;
  if (timeProportional) reward = reward * Math.max(0, 1 - (new Date().getTime() - core.ept0) / core.EPISODE_MAX_TIME);
  WOB_REWARD_GLOBAL = reward; WOB_DONE_GLOBAL = true; WOB_EPISODE_ID++;
  core.startEpisode();
};
core.getUtterance = function () {
  return document.getElementById('query').textContent.replace(/\\s+/g, ' ').trim();
};
window.addEventListener('load', function () { core.startEpisode(); });
"""
CORE_CSS = """body { margin: 0; font-size: 10px; } #wrap { width: 160px; height: 210px; }
#query { height: 50px; background: #ff0; } #area { height: 160px; }
#sync-task-cover { position: absolute; left: 0; top: 0; width: 160px; height: 210px; background: #111; color: #fff; }
#reward-display { position: absolute; left: 170px; top: 0; }"""
PAGE = """<!DOCTYPE html><html><head><link rel="stylesheet" href="../core/core.css">
<script src="../core/core.js"></script><script>
var genProblem = function () {
  var names = ['ONE', 'TWO', 'THREE'], target = names[core.randi(0, 3)];
  document.getElementById('query').textContent = 'Click button ' + target + '.';
  var area = document.getElementById('area'); area.innerHTML = '';
  var order = names.slice();
  for (var i = order.length - 1; i > 0; i--) { var j = core.randi(0, i + 1); var t = order[i]; order[i] = order[j]; order[j] = t; }
  order.forEach(function (n) {
    var b = document.createElement('button'); b.textContent = n;
    b.onclick = function () { core.endEpisode(n === target ? 1 : -1, true, 'clicked ' + n + ' in ' + WOB_DATA_MODE); };
    area.appendChild(b);
  });
};
</script></head><body><div id="wrap"><div id="query"></div><div id="area"></div></div>
<div id="reward-display">Last reward: -</div></body></html>"""


@pytest.fixture
def miniwob_dir(tmp_path):
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "core.js").write_text(CORE_JS)
    (tmp_path / "core" / "core.css").write_text(CORE_CSS)
    (tmp_path / "miniwob").mkdir()
    (tmp_path / "miniwob" / "click-test-3.html").write_text(PAGE)
    (tmp_path / "miniwob" / "index.html").write_text("<html>index</html>")
    return tmp_path / "miniwob"


def click_named(name: str):
    def act(messages, tools):
        dom = parse_dom(messages[-1].text.split("Elements:", 1)[1])
        x, y = next(e for e in dom if e.tag == "button" and e.text == name).center
        return Message.assistant(tool_calls=[ToolCall(name="click", arguments={"x": x, "y": y})])
    return act


async def test_miniwob_pages_are_seeded_and_their_reward_is_read(browsers, miniwob_dir):
    tasks = traject.load_tasks("miniwob", path=str(miniwob_dir), n=3, split="train")
    assert {t.metadata["gui_task"] for t in tasks} == {"click-test-3"}  # index.html is not a task
    env = traject.make("miniwob", observation=["screenshot", "dom"], device_scale_factor=2)
    try:
        first = await env.reset(tasks[0])
        utterance = first[-1].text.splitlines()[0]
        assert utterance.startswith("Task: Click button ")
        shot = first[-1].images[0]
        assert (shot.width, shot.height) == (320, 420)  # the 160x210 task area at scale 2
        listing = first[-1].text
        assert "START" not in listing and "Last reward" not in listing  # cover hidden, HUD left out
        again = await env.reset(tasks[0])
        assert again[-1].text == first[-1].text  # same seed, same problem
        others = {first[-1].text, *[(await env.reset(t))[-1].text for t in tasks[1:]]}
        assert len(others) >= 2
    finally:
        await env.aclose()

    target = utterance.split()[-1].rstrip(".")
    t0 = time.monotonic()
    traj = await AgentLoop(ScriptedPolicy(click_named(target))).run(GuiEnv(observation=["screenshot", "dom"]), tasks[0])
    elapsed = time.monotonic() - t0
    page = traj.steps[-1].info["gui"]["page"]
    assert traj.status is Status.COMPLETED and page["raw_reward"] == 1.0
    # scaled by the page's own 10 s limit (MiniWoB's default), not by a limit the driver set
    assert 1.0 - elapsed / 10.0 <= page["reward"] < 1.0 and page["reason"] == f"clicked {target} in train"
    assert traj.reward.total == 1.0

    wrong = next(n for n in ("ONE", "TWO", "THREE") if n != target)
    traj = await AgentLoop(ScriptedPolicy(click_named(wrong))).run(GuiEnv(observation=["screenshot", "dom"]), tasks[0])
    assert traj.reward.total == -1.0 and not traj.reward.success


# Pages in MiniWoB++'s own format with their own timer: one ends with a time-scaled reward that
# reports the elapsed time it saw, one ends only when its timer runs out, one has a covered
# button and one below the screen.
TIMED_PAGE = """<!DOCTYPE html><html><head><link rel="stylesheet" href="../core/core.css">
<script src="../core/core.js"></script><script>
core.EPISODE_MAX_TIME = 4000;
var genProblem = function () {
  document.getElementById('query').textContent = 'Click GO (mode ' + WOB_DATA_MODE + ').';
  var area = document.getElementById('area'); area.innerHTML = '';
  var b = document.createElement('button'); b.textContent = 'GO';
  b.onclick = function () { core.endEpisode(1, true, 'dt=' + (new Date().getTime() - core.ept0)); };
  area.appendChild(b);
};
</script></head><body><div id="wrap"><div id="query"></div><div id="area"></div></div></body></html>"""
TIMER_ONLY_PAGE = """<!DOCTYPE html><html><head><link rel="stylesheet" href="../core/core.css">
<script src="../core/core.js"></script><script>
core.EPISODE_MAX_TIME = 400;
var genProblem = function () {
  document.getElementById('query').textContent = 'Watch the square.';
  document.getElementById('area').innerHTML = '<div style="width:40px;height:40px;background:red">sq</div>';
};
</script></head><body><div id="wrap"><div id="query"></div><div id="area"></div></div></body></html>"""
LAYOUT_PAGE = """<!DOCTYPE html><html><head><link rel="stylesheet" href="../core/core.css">
<script src="../core/core.js"></script><script>
var genProblem = function () {
  document.getElementById('query').textContent = 'Press OK.';
  document.getElementById('area').innerHTML =
    '<button id="ok" style="position:absolute;left:10px;top:80px">OK</button>' +
    '<div style="position:absolute;left:0;top:70px;width:160px;height:40px;background:#888">overlay</div>' +
    '<button style="position:absolute;left:10px;top:900px">FAR</button>';
};
</script></head><body><div id="wrap"><div id="query"></div><div id="area"></div></div></body></html>"""


@pytest.fixture
def timed_dir(miniwob_dir):
    for name, page in (("timed", TIMED_PAGE), ("timer-only", TIMER_ONLY_PAGE), ("layout", LAYOUT_PAGE)):
        (miniwob_dir / f"{name}.html").write_text(page)
    return miniwob_dir


def _dt(reason: str) -> float:
    return float(reason.removeprefix("dt="))


async def test_page_keeps_its_own_time_limit_and_miniwob_scaling(browsers, timed_dir):
    [task] = traject.load_tasks("miniwob", path=str(timed_dir), names=["timed"], split="test")
    assert task.data["data_mode"] == "train"  # MiniWoB++'s harness default, whatever the split
    for override, limit_ms in ((None, 4000), (7.5, 7500)):
        env = GuiEnv(observation=["screenshot", "dom"], page_time_limit_s=override)
        traj = await AgentLoop(ScriptedPolicy(click_named("GO"))).run(env, task)
        page = traj.steps[-1].info["gui"]["page"]
        assert "mode train" in traj.messages[1].text and page["raw_reward"] == 1.0
        # MiniWoB++'s formula: reward * max(0, 1 - elapsed / EPISODE_MAX_TIME), with the page's limit
        assert page["reward"] == pytest.approx(1.0 - _dt(page["reason"]) / limit_ms, abs=2e-3), override
    env = GuiEnv(observation=["screenshot", "dom"], page_time_limit_s="none")
    traj = await AgentLoop(ScriptedPolicy(click_named("GO"))).run(env, task)
    assert traj.steps[-1].info["gui"]["page"]["reward"] == pytest.approx(1.0, abs=1e-5)


async def test_a_page_that_ends_only_on_its_timer_ends(browsers, timed_dir):
    [task] = traject.load_tasks("miniwob", path=str(timed_dir), names=["timer-only"])
    waits = ScriptedPolicy([Message.assistant(tool_calls=[ToolCall(name="wait", arguments={"seconds": 2})])] * 5)
    traj = await AgentLoop(waits).run(GuiEnv(), task)
    assert traj.status is Status.COMPLETED and len(traj.steps) == 1
    assert traj.steps[0].info["gui"]["page"] == {"done": True, "reward": -1.0, "raw_reward": -1.0,
                                                 "reason": "timed out"}

    async def slow_click(messages, tools):  # the timer runs out while the policy thinks
        await anyio.sleep(1.5)
        return Message.assistant(tool_calls=[ToolCall(name="click", arguments={"x": 80, "y": 100})])

    traj = await AgentLoop(ScriptedPolicy(slow_click)).run(GuiEnv(), task)
    assert traj.status is Status.COMPLETED and len(traj.steps) == 1
    # the click was not run: on MiniWoB++'s START cover it would have begun a new episode
    assert traj.messages[-2].text.startswith("Error: not run: the page had ended the episode")
    assert traj.steps[0].info["gui"]["page"]["reason"] == "timed out" and traj.reward.total == -1.0


async def test_dom_listing_says_covered_or_outside(browsers, timed_dir):
    [task] = traject.load_tasks("miniwob", path=str(timed_dir), names=["layout"])
    env = GuiEnv(observation=["dom"])
    try:
        first = await env.reset(task)
        dom = {e.text: e for e in parse_dom(first[-1].text.split("Elements:", 1)[1])}
        assert dom["OK"].placement == "covered" and dom["FAR"].placement == "outside"
        assert dom["overlay"].placement == "visible"
        assert "offscreen" not in first[-1].text
    finally:
        await env.aclose()
