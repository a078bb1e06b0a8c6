"""CM2 early termination in ToolEnv, against the scripted judge server: a required checklist
item that fails at the end of a user turn ends the episode there, and the trajectory says why."""

from __future__ import annotations

import json
import re

import pytest

from traject.agents.loop import AgentLoop
from traject.agents.scripted import ScriptedPolicy
from traject.environments.tool_env import ToolEnv
from traject.environments.users.scripted import ScriptedUser
from traject.rewards.checklist import ChecklistConfig, ChecklistReward
from traject.rewards.judge import JudgeConfig, LLMJudge
from traject.tools.decorator import tool
from traject.types import Message, Status, Task, ToolCall

pytestmark = pytest.mark.anyio


@tool(name="weather")
async def weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: The city.
    """
    return {"Paris": "18 C", "London": "12 C"}.get(city, "unknown city")


def item(iid, question, focus, weight, required=False):
    return {"id": iid, "question": question, "focus_on": focus, "pass_condition": f"pass {iid}",
            "failure_examples": [f"fail {iid}"], "evidence": [{"turn": 0, "step": 0, "from": focus, "snippet": "s"}],
            "required_for_next_turn": required, "dependence": [], "weight": weight}


TASK = Task(id="w", prompt="Weather in Paris?", data={"checklist": [
    {"turn": 0, "items": [item("C0", "Called weather for Paris?", "assistant.tool_calls", 0.5, required=True),
                          item("C1", "Reported 18 C?", "assistant.content.user_visible_reply", 0.5)]},
    {"turn": 1, "items": [item("D0", "Reported 12 C?", "assistant.content.user_visible_reply", 1.0)]},
]})


def judge_says(paris_called: bool):
    def reply(req):
        question = re.search(r"^Question: (.*)$", req.last_user_text, re.M).group(1)
        answer = paris_called if "Paris" in question else True
        return json.dumps({"high_level_understanding_of_the_question": question, "analysis_of_if_focus_on": "-",
                           "analysis_of_pass_condition": "-", "analysis_of_failure_examples": "-", "answer": answer})
    return reply


def policy(city: str) -> ScriptedPolicy:
    return ScriptedPolicy([
        Message.assistant("", tool_calls=[ToolCall(id="c1", name="weather", arguments={"city": city})]),
        Message.assistant("It is 18 C."),
        Message.assistant("", tool_calls=[ToolCall(id="c2", name="weather", arguments={"city": "London"})]),
        Message.assistant("It is 12 C in London."),
    ])


async def episode(server, *, early_termination=None, end_on_failure=True):
    judge = LLMJudge(JudgeConfig(base_url=server.url, model="judge", backoff_s=0.01, parse_retries=0))
    env = ToolEnv([weather], name="weather", user=ScriptedUser(["And London?"]), early_termination=early_termination,
                  reward=ChecklistReward(judge, ChecklistConfig(end_episode_on_required_failure=end_on_failure)))
    return await AgentLoop(policy("Lyon")).run(env, TASK)


async def test_required_failure_ends_the_episode_and_says_why(chat_server):
    traj = await episode(chat_server(judge_says(paris_called=False)))
    assert traj.status is Status.COMPLETED and len(traj.steps) == 2
    assert not any(m.role == "user" and m.text == "And London?" for m in traj.messages)  # the user never spoke
    why = traj.steps[-1].info["early_termination"]
    assert why["turn"] == 0 and why["failed_required"] == ["C0"] and "required checklist item" in why["reason"]
    assert traj.reward is not None and not traj.reward.failed


@pytest.mark.parametrize("kwargs", [{"early_termination": False}, {"end_on_failure": False}])
async def test_the_flag_turns_it_off(chat_server, kwargs):
    traj = await episode(chat_server(judge_says(paris_called=False)), **kwargs)
    assert len(traj.steps) == 4 and any(m.text == "And London?" for m in traj.messages)
    assert all("early_termination" not in s.info for s in traj.steps)


async def test_a_passing_turn_goes_on(chat_server):
    traj = await episode(chat_server(judge_says(paris_called=True)))
    assert len(traj.steps) == 4 and "early_termination" not in traj.steps[1].info
