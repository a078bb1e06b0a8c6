import json

import pytest

from traject.environments.users import EmotionUser, EmotionUserConfig, ResponseCache, SimulatorLLM, SimulatorLLMConfig
from traject.environments.users.emotion import EmotionProfile, load_profiles, parse_analysis
from traject.types import InfraError, Message, Task

PROFILE = {"id": "p1", "player": "Name: Kim, 30. Short answers.", "scene": "Kim's dog died last week. Hidden theme: guilt.",
           "main_cha": "negative", "cha_group": ["proud", "tired"], "task": "Be understood, not fixed.",
           "first_talk": "rough week."}
TASK = Task(id="e1", data={"profile": PROFILE})
OPEN: list[SimulatorLLM] = []


@pytest.fixture(autouse=True)
async def close_clients():
    yield
    while OPEN:
        await OPEN.pop().aclose()


def emotion_script(changes, replies):
    """A user endpoint: the analyser answers the next change, the reply call the next reply."""
    changes, replies = list(changes), list(replies)

    def responder(req):
        system = req.messages[0]["content"]
        if system.startswith("You analyse"):
            change = changes.pop(0)
            return change if isinstance(change, str) else json.dumps(
                {"content": "c", "reason": "r", "activity": "a", "analyse": f"felt {change}", "change": change})
        return json.dumps({"thinking": "t", "response": replies.pop(0)})

    return responder


def user(server, **config) -> EmotionUser:
    llm = SimulatorLLM(SimulatorLLMConfig(base_url=server.url, backoff_s=0.0), cache=ResponseCache())
    OPEN.append(llm)
    return EmotionUser(llm, config=EmotionUserConfig(**config))


@pytest.mark.anyio
async def test_two_calls_per_turn_trace_and_thoughts_hidden(chat_server):
    server = chat_server(emotion_script([8, -5], ["yeah. thanks.", "you don't get it."]))
    u = user(server)
    opening = await u.reset(TASK)
    assert opening.text == "rough week." and len(server.requests) == 0  # first_talk: no model call
    turn = await u.respond([opening, Message.assistant("<think>she grieves</think>I'm so sorry. What happened?")])
    assert turn.message.text == "yeah. thanks." and not turn.done
    assert turn.state["emotion"] == 38 and turn.state["emotion_trace"] == [30, 38]
    analyser, reply = server.requests[0].body, server.requests[1].body
    assert "she grieves" not in json.dumps(analyser) and "she grieves" not in json.dumps(reply)
    assert "I'm so sorry. What happened?" in analyser["messages"][1]["content"]
    assert "felt 8" in reply["messages"][1]["content"]  # the reply is given the analysis
    turn = await u.respond([Message.assistant("Cheer up, get a new dog!")])
    assert turn.state["emotion_trace"] == [30, 38, 33] and turn.state["reasons"] == ["felt 8", "felt -5"]
    assert turn.state["emotion_label"] == "C"


@pytest.mark.anyio
async def test_sage_start_and_clamp(chat_server):
    server = chat_server(emotion_script([35, -40], ["ok", "hm"]))
    u = user(server, start_emotion=40, max_change=10)
    await u.reset(TASK)
    t1 = await u.respond([Message.assistant("a")])
    t2 = await u.respond([Message.assistant("b")])
    assert t1.state["emotion_trace"] == [40, 50] and t2.state["emotion"] == 40 and t2.state["change"] == -10


@pytest.mark.anyio
@pytest.mark.parametrize(("changes", "replies", "start", "reason", "final"), [
    ([75], ["thank you, that helped. goodbye!"], 30, "emotion_high", 100),
    ([-40], ["forget it. bye."], 30, "emotion_low", 0),
    ([5], ["ok, bye-bye then."], 30, "goodbye", 35),
])
async def test_episode_ends_at_extremes_and_goodbye(chat_server, changes, replies, start, reason, final):
    server = chat_server(emotion_script(changes, replies))
    u = user(server, start_emotion=start)
    await u.reset(TASK)
    turn = await u.respond([Message.assistant("...")])
    assert turn.done and turn.state["done_reason"] == reason and turn.state["emotion"] == final


@pytest.mark.anyio
async def test_max_turns(chat_server):
    server = chat_server(emotion_script([1, 1], ["mm", "mm."]))
    u = user(server, max_turns=2)
    await u.reset(TASK)
    assert not (await u.respond([Message.assistant("a")])).done
    last = await u.respond([Message.assistant("b")])
    assert last.done and last.state["done_reason"] == "max_turns"


@pytest.mark.anyio
async def test_opening_is_generated_without_first_talk(chat_server):
    server = chat_server(emotion_script([], ["so... my dog died."]))
    u = user(server)
    opening = await u.reset(Task(id="e2", data={"profile": {**PROFILE, "first_talk": None}}))
    assert opening.text == "so... my dog died." and "open it" in server.requests[0].messages[1]["content"]


@pytest.mark.anyio
async def test_unparseable_analysis_is_an_infra_error(chat_server):
    server = chat_server(emotion_script(["I feel things", "no number here"], []))
    u = user(server)
    await u.reset(TASK)
    with pytest.raises(InfraError, match="emotion analyser"):
        await u.respond([Message.assistant("hi")])


@pytest.mark.anyio
async def test_rlver_text_format_and_profiles(tmp_path):
    assert parse_analysis("Content:\nx\nReason:\ny\nActivity:\nz\nAnalyse:\nhurt\nChange:\n-6").change == -6
    p = tmp_path / "profiles.jsonl"
    rlver = {"id": 7, "player": "p", "scene": "s", "main_cha": "m", "topic": "work"}
    sage = {"id": "x", "player": "p", "scene": "s", "main_cha": "负面型", "cha_group": ["愤怒", "自私"],
            "task": "t", "first_talk": "f"}
    p.write_text(json.dumps(rlver) + "\n" + json.dumps(sage, ensure_ascii=False) + "\n")
    loaded = load_profiles(str(p))
    assert [x.id for x in loaded] == ["7", "x"] and loaded[1].cha_group == ["愤怒", "自私"]
    assert isinstance(loaded[0], EmotionProfile) and loaded[0].first_talk is None
    p.write_text(json.dumps(rlver) + "\n{\"id\": 1}\n")
    with pytest.raises(ValueError, match=r"profiles.jsonl, line 2: not an emotion profile"):
        load_profiles(str(p))
    with pytest.raises(FileNotFoundError, match="RLVER/SAGE profile JSONL"):
        load_profiles(str(tmp_path / "missing.jsonl"))
