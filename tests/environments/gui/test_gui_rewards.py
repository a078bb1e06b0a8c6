"""GUI rewards on real pages: BTL-UI against the page's target, region consistency on grounding tasks."""

from __future__ import annotations

import json

import pytest

from traject.agents.gui_oracle import GuiOracle, oracle_actions
from traject.agents.policy import PolicyOutput
from traject.agents.rollouts import Rollouts
from traject.environments.gui import GuiEnv, gui_reward, gui_tasks, parse_dom
from traject.episode import current_episode
from traject.rewards.gui import RegionConsistency
from traject.types import Message, Step, Task, Trajectory

pytestmark = [pytest.mark.browser, pytest.mark.anyio]
DOM = ["screenshot", "dom"]


async def test_btl_reward_against_the_page_target(browsers):
    tasks = gui_tasks(names=["double-click", "navigate-tabs"])
    env = lambda: GuiEnv(observation=DOM, reward=gui_reward(btl_weight=1.0))  # noqa: E731
    trajs = await Rollouts(GuiOracle("btl"), env, concurrency=3).run(tasks)
    for traj in trajs:
        r = traj.reward
        assert r.components["page"] == 1.0, traj.task_id
        assert r.components["btl"] == 1.0 and r.components["btl/blink"] == 1.0, (traj.task_id, r.info)
        assert r.total == 2.0
        assert "target" in traj.steps[0].info["gui"]

    # A well-formed answer that looks at and clicks the wrong place earns the format part only.
    class Misser:
        async def act(self, messages, tools):
            link = [{"Plan": "p", "Action": {"function": "click", "point_2d": [350, 350]}}]
            text = f'<blink>[{{"bbox_2d": [340, 340, 359, 359]}}]</blink><think>t</think><link>{json.dumps(link)}</link>'
            return PolicyOutput(message=Message.assistant(text))

    trajs = await Rollouts(Misser(), lambda: GuiEnv(observation=DOM, reward=gui_reward(btl_weight=1.0), max_turns=1)
                           ).run(gui_tasks(names=["click-button"]))
    r = trajs[0].reward
    assert r.components["btl/format"] == 1.0 and r.components["btl"] == pytest.approx(0.1)
    assert r.components["page"] == 0.0


async def test_region_consistency_on_grounding_tasks(browsers):
    tasks = gui_tasks(grounding=True, names=["radio-choice"])
    assert all(t.data["grounding"] and t.data["image_size"] == [360, 360] for t in tasks)

    class Voters:
        """Three samples click the target; the fourth clicks a corner."""

        async def act(self, messages, tools):
            last = messages[-1].text
            task = next(line[6:] for line in last.splitlines() if line.startswith("Task: "))
            x, y = oracle_actions(task, parse_dom(last.split("Elements:", 1)[1]))[0].args.values()
            if current_episode().sample_index == 3:
                x, y = 340, 340
            return PolicyOutput(message=Message.assistant(f"Action: click({x}, {y})"))

    trajs = await Rollouts(Voters(), lambda: GuiEnv(observation=DOM), group_size=4,
                           group_reward=RegionConsistency()).run(tasks)
    for task in tasks:
        group = sorted((t for t in trajs if t.task_id == task.id), key=lambda t: t.sample_index)
        assert [len(t.steps) for t in group] == [1, 1, 1, 1]
        assert all(json.loads(t.final_answer) == t.steps[0].info["gui"]["actions"][0]["point"] for t in group)
        rc = [t.reward.components["region_consistency"] for t in group]
        assert rc[0] == rc[1] == rc[2] == 1.0 and rc[3] < 0.5


async def test_btl_reward_needs_a_target():
    from traject.environments.gui.btl import PageTargetBTL

    traj = Trajectory(task_id="t", steps=[Step(index=0, action=Message.assistant("click(1, 2)"), info={"gui": {}})])
    result = await PageTargetBTL().score(traj, Task(id="t"))
    assert result.failed and "no step had a click target" in result.error
