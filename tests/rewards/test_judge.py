"""LLMJudge against the real scripted OpenAI-compatible server."""

from __future__ import annotations

import json
import time

import anyio
import pytest
from pydantic import BaseModel, ConfigDict

from traject.rewards.judge import JudgeConfig, JudgeError, JudgeParseError, LLMJudge, extract_json
from traject.testing import ScriptedReply


class Verdict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    analysis: str
    answer: bool


def judge_for(server, **kw) -> LLMJudge:
    return LLMJudge(JudgeConfig(base_url=server.url, model="judge", backoff_s=0.01, **kw))


@pytest.mark.anyio
async def test_asks_with_json_schema_and_parses(chat_server):
    server = chat_server(['{"analysis": "yes", "answer": true}'])
    a = await judge_for(server).ask("q?", Verdict)
    assert a.value == Verdict(analysis="yes", answer=True)
    body = server.requests[0].body
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["analysis", "answer"]
    assert body["temperature"] == 0.0


@pytest.mark.anyio
async def test_cache_by_content(chat_server):
    server = chat_server(['{"analysis": "a", "answer": true}', '{"analysis": "b", "answer": false}'])
    judge = judge_for(server)
    a1 = await judge.ask("same", Verdict)
    a2 = await judge.ask("same", Verdict)
    a3 = await judge.ask("other", Verdict)
    assert (a1.cached, a2.cached, a3.cached) == (False, True, False)
    assert a2.value.analysis == "a" and a3.value.analysis == "b"
    assert len(server.requests) == 2


@pytest.mark.anyio
async def test_identical_questions_in_flight_make_one_request(chat_server):
    server = chat_server(lambda req: ScriptedReply(content='{"analysis": "x", "answer": true}', delay_s=0.2))
    judge = judge_for(server)
    out = []

    async def ask():
        out.append(await judge.ask("dup", Verdict))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(ask)
    assert len(server.requests) == 1
    assert sum(a.cached for a in out) == 4


@pytest.mark.anyio
async def test_fallback_to_text_when_structured_output_refused(chat_server):
    def responder(req):
        if "response_format" in req.body:
            return ScriptedReply(status=400, content="response_format not supported")
        return 'Here you go:\n```json\n{"analysis": "fenced", "answer": false}\n```'

    server = chat_server(responder)
    judge = judge_for(server)
    a = await judge.ask("q", Verdict)
    assert a.value.answer is False and a.value.analysis == "fenced"
    assert judge.stats.fallbacks == 1
    await judge.ask("q2", Verdict)
    assert "response_format" not in server.requests[-1].body  # remembered


@pytest.mark.anyio
async def test_garbage_answer_raises_parse_error_after_parse_retries(chat_server):
    server = chat_server(lambda req: "I think the answer is probably yes!")
    judge = judge_for(server, parse_retries=2)
    with pytest.raises(JudgeParseError):
        await judge.ask("q", Verdict)
    assert len(server.requests) == 3
    assert judge.stats.parse_failures == 3


@pytest.mark.anyio
async def test_wrong_shape_is_a_parse_error(chat_server):
    server = chat_server(lambda req: json.dumps({"analysis": "a", "answer": "maybe"}))
    with pytest.raises(JudgeParseError, match="answer"):
        await judge_for(server, parse_retries=0).ask("q", Verdict)


@pytest.mark.anyio
async def test_retries_transient_errors_then_gives_up(chat_server):
    server = chat_server([ScriptedReply(status=503), ScriptedReply(status=429),
                          '{"analysis": "ok", "answer": true}'])
    assert (await judge_for(server, max_retries=3).ask("q", Verdict)).value.answer
    server2 = chat_server(lambda req: ScriptedReply(status=500))
    with pytest.raises(JudgeError, match="after 3 attempt"):
        await judge_for(server2, max_retries=2).ask("q", Verdict)
    assert len(server2.requests) == 3


@pytest.mark.anyio
async def test_concurrency_limit_is_respected(chat_server):
    server = chat_server(lambda req: ScriptedReply(content='{"analysis": "x", "answer": true}', delay_s=0.15))
    judge = judge_for(server, max_concurrency=3)
    t0 = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for i in range(9):
            tg.start_soon(judge.ask, f"q{i}", Verdict)
    elapsed = time.perf_counter() - t0
    assert judge.stats.in_flight_max == 3
    assert elapsed >= 3 * 0.15 * 0.9  # three waves


def test_extract_json_forms():
    assert extract_json('{"a": 1}') == {"a": 1}
    assert extract_json('blah ```json\n{"a": 2}\n``` tail') == {"a": 2}
    assert extract_json('think {"a": 1} then {"a": 3} done') == {"a": 3}
    with pytest.raises(ValueError):
        extract_json("no json here")


# -- the judge as a reward ---------------------------------------------------------------------

from traject.rewards.judge_reward import RubricJudge, RubricJudgeConfig  # noqa: E402
from traject.types import Message, Task, Trajectory  # noqa: E402


def two_turns() -> Trajectory:
    return Trajectory(task_id="r", messages=[
        Message.system("be nice"), Message.user("hi, what is 2+2?"), Message.assistant("4"),
        Message.user("and 3+3?"), Message.assistant("7")])


@pytest.mark.anyio
async def test_rubric_judge_per_turn_keeps_rationales(chat_server):
    def grade(req):
        current = req.last_user_text.split("# What to grade")[1]
        ok = "2+2" in current
        return json.dumps({"rationale": "correct" if ok else "3+3 is 6, not 7", "score": 10 if ok else 2})

    server = chat_server(grade)
    judge = LLMJudge(JudgeConfig(base_url=server.url))
    r = await RubricJudge(judge, RubricJudgeConfig(per_turn=True)).score(two_turns(), Task(id="r"))
    assert r.per_turn == pytest.approx([1.0, 0.2]) and r.total == pytest.approx(0.6)
    assert r.info["turns"][1]["rationale"] == "3+3 is 6, not 7"
    second = [q.last_user_text for q in server.requests if "and 3+3?" in q.last_user_text.split("# What to grade")[1]][0]
    assert "hi, what is 2+2?" in second.split("# What to grade")[0]    # earlier turns as history
    whole = await RubricJudge(judge, RubricJudgeConfig(rubric_key=None)).score(
        two_turns(), Task(id="r", data={"rubric": "ignored"}))
    assert whole.total == pytest.approx(1.0) and whole.info["rationale"] == "correct"


@pytest.mark.anyio
async def test_rubric_judge_fails_on_garbage_or_out_of_range(chat_server):
    garbage = LLMJudge(JudgeConfig(base_url=chat_server(lambda r: "great job!!").url, parse_retries=0))
    r = await RubricJudge(garbage, RubricJudgeConfig(per_turn=True)).score(two_turns(), Task(id="r"))
    assert r.failed
    wild = LLMJudge(JudgeConfig(base_url=chat_server(lambda r: '{"rationale": "x", "score": 11}').url))
    r = await RubricJudge(wild).score(two_turns(), Task(id="r"))
    assert r.failed and "outside [0, 10]" in r.error
