import json

import pytest

from traject.environments.users import EmotionUser, EmotionUserConfig, ResponseCache, SimulatorLLM, SimulatorLLMConfig
from traject.environments.users.emotion import (RLVER_RULES, SAGE_RULES, EmotionProfile, load_profiles,
                                                parse_analysis)
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
    u = user(server, rules="rlver")
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
    u = user(server, rules="sage", start_emotion=start, max_change=None)
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


def _profile_task(tmp_path, line: dict) -> Task:
    """A task from a one-line profile file in the benchmark's own JSONL format."""
    path = tmp_path / "profile.jsonl"
    path.write_text(json.dumps(line, ensure_ascii=False) + "\n", encoding="utf-8")
    [profile] = load_profiles(str(path))
    return Task(id=f"e-{profile.id}", data={"profile": profile.model_dump(mode="json")})


RLVER_LINE = {"id": 12, "player": "小王，28岁，程序员。", "scene": "加班三个月。隐藏主题：怕被裁员。",
              "main_cha": "负面型", "topic": "工作"}
SAGE_LINE = {"id": "sage-3", "player": "小李，35岁。", "scene": "和父母争吵。隐藏主题：想被理解。",
             "main_cha": "被动型", "cha_group": "敏感、自尊心强", "topic": "家庭",
             "task": "希望对方理解自己的委屈", "first_talk": "唉，今天又吵架了。"}


@pytest.mark.anyio
async def test_rlver_profiles_get_rlvers_rules(chat_server, tmp_path):
    task = _profile_task(tmp_path, RLVER_LINE)
    server = chat_server(emotion_script([-25, 40, -50], ["最近好累。", "嗯。", "好多了。", "算了。"]))
    u = user(server)
    assert (await u.reset(task)).text == "最近好累。"  # RLVER profiles have no first talk: it is generated
    t1 = await u.respond([Message.assistant("a")])
    assert t1.state["emotion_trace"] == [30, 5] and not t1.done  # 5 would end SAGE's dialogue, not RLVER's
    t2 = await u.respond([Message.assistant("b")])
    assert t2.state["emotion"] == 45 and t2.state["rules"] == "rlver"  # +40 unclamped
    t3 = await u.respond([Message.assistant("c")])
    assert t3.done and t3.state["done_reason"] == "emotion_low" and t3.state["emotion"] == 0
    assert u.rules == RLVER_RULES and RLVER_RULES.max_turns == 8


@pytest.mark.anyio
async def test_sage_profiles_get_sages_rules(chat_server, tmp_path):
    task = _profile_task(tmp_path, SAGE_LINE)
    server = chat_server(emotion_script([-30, -10, -10, -10], ["嗯", "哦", "唉", "拜拜"]))
    u = user(server)
    assert (await u.reset(task)).text == "唉，今天又吵架了。"
    trace = []
    for word in "abcd":
        turn = await u.respond([Message.assistant(word)])
        trace = turn.state["emotion_trace"]
        if turn.done:
            break
    # start 40, each change clamped to ±10; 10 is not below 10, so the dialogue goes on to 0.
    assert trace == [40, 30, 20, 10, 0] and turn.state["done_reason"] == "emotion_low"
    assert u.rules == SAGE_RULES and (SAGE_RULES.max_turns, SAGE_RULES.end_emotion) == (9, 10)


@pytest.mark.anyio
async def test_sage_turn_limit_and_overrides_are_config_fields(chat_server, tmp_path):
    task = _profile_task(tmp_path, SAGE_LINE)
    server = chat_server(emotion_script([1] * 9, ["嗯"] * 9))
    u = user(server)
    await u.reset(task)
    turns = [await u.respond([Message.assistant("a")]) for _ in range(9)]
    assert [t.done for t in turns] == [False] * 8 + [True] and turns[-1].state["done_reason"] == "max_turns"
    # The threshold and the turn limit are config fields that override either benchmark's rules.
    server = chat_server(emotion_script([-25], ["嗯"]))
    u = user(server, rules="rlver", end_emotion=10, end_rule="below", max_turns=3)
    await u.reset(task)
    turn = await u.respond([Message.assistant("a")])
    assert turn.done and turn.state["done_reason"] == "emotion_low" and turn.state["rules"] == "rlver+custom"
    assert EmotionUserConfig(rules="rlver", max_turns=3).rules_for(None).max_turns == 3
