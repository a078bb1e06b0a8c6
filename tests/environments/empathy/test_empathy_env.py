import json

import pytest

import traject
from traject.agents import AgentLoop
from traject.agents.openai_policy import OpenAIPolicy
from traject.environments.users import default_cache
from traject.testing import ScriptedReply
from traject.types import Status


def sentient_user(changes, replies):
    changes, replies = list(changes), list(replies)

    def respond(req):
        if req.messages[0]["content"].startswith("You analyse"):
            c = changes.pop(0)
            return json.dumps({"content": "c", "reason": f"reason {c}", "activity": "a", "analyse": f"felt {c}", "change": c})
        return json.dumps({"thinking": "...", "response": replies.pop(0)})

    return respond


@pytest.fixture(autouse=True)
def fresh_cache():
    default_cache().clear()


@pytest.fixture
async def policy():
    made: list[OpenAIPolicy] = []
    yield lambda server: made.append(OpenAIPolicy(model="agent", base_url=server.url)) or made[-1]
    for p in made:
        await p.aclose()


@pytest.mark.anyio
async def test_full_episode_emotion_trace_and_reward(chat_server, policy):
    task = next(t for t in traject.load_tasks("empathy") if t.id == "empathy-p-nurse")
    agent = chat_server([
        "<think>SECRET-THOUGHT she is angry.</think>That sounds really unfair. What happened?",
        "<think>Name it.</think>You gave three weeks of doubles and they skipped you. Of course you're fed up.",
        "<think>...</think>Want to tell me about the shift that broke it?",
    ])
    user = chat_server(sentient_user([12, 20, 40], ["they gave it to the new guy.", "yeah. exactly that.",
                                                     "thanks. really. bye for now."]))
    env = traject.make("empathy", user_base_url=user.url, rules="rlver")
    traj = await AgentLoop(policy(agent)).run(env, task)
    assert traj.status is Status.COMPLETED and traj.num_turns == 3
    assert traj.messages[1].text == task.data["profile"]["first_talk"]
    states = [s.info["user_state"] for s in traj.steps]
    assert [s["emotion"] for s in states] == [42, 62, 100] and states[-1]["emotion_trace"] == [30, 42, 62, 100]
    # RLVER's rollouts end at 100 only through the user's goodbye (SAGE's end there by rule).
    assert states[-1]["done_reason"] == "goodbye" and states[-1]["rules"] == "rlver"
    assert traj.reward.total == 1.0 and traj.reward.per_turn == [0.42, 0.62, 1.0]
    # the user (analyser and reply calls alike) never saw the agent's thinking
    assert "SECRET-THOUGHT" not in json.dumps([r.body for r in user.requests]) and len(user.requests) == 6
    assert "<think>" in agent.requests[0].messages[0]["content"]  # think-then-say is asked of the agent


@pytest.mark.anyio
async def test_sage_settings_and_low_emotion_exit(chat_server, policy):
    task = traject.load_tasks("empathy")[0]
    agent = chat_server(["Just get a new job.", "Honestly, stop complaining."])
    user = chat_server(sentient_user([-30, -30], ["wow. ok.", "forget it. bye."]))
    env = traject.make("empathy", user_base_url=user.url, start_emotion=40, max_change=10)
    traj = await AgentLoop(policy(agent)).run(env, task)
    trace = traj.steps[-1].info["user_state"]["emotion_trace"]
    assert trace == [40, 30, 20] and traj.steps[-1].info["user_state"]["done_reason"] == "goodbye"
    assert traj.reward.total == pytest.approx(0.2)


@pytest.mark.anyio
async def test_broken_simulator_is_infra_error(chat_server, policy):
    task = traject.load_tasks("empathy")[0]
    agent = chat_server(["I hear you."])
    user = chat_server([ScriptedReply(status=500), ScriptedReply(status=500)])
    traj = await AgentLoop(policy(agent)).run(traject.make("empathy", user_base_url=user.url), task)
    assert traj.status is Status.INFRA_ERROR and not traj.trainable


def test_profiles_from_a_file(tmp_path):
    path = tmp_path / "train_profile.jsonl"
    path.write_text(json.dumps({"id": "r1", "player": "p", "scene": "s", "main_cha": "m", "topic": "t"}) + "\n")
    [task] = traject.load_tasks("empathy", path=path)
    assert task.id == "empathy-r1" and task.data["profile"]["topic"] == "t"
    assert task.metadata["rules"] == "rlver"  # an RLVER profile line: RLVER's rules by default
    assert {t.metadata["rules"] for t in traject.load_tasks("empathy")} == {"sage"}  # built-ins are SAGE-shaped
