"""CM2 checklist reward, against the real scripted OpenAI-compatible server.

The judge here is a scripted responder that answers by (item question, judged step) from a
table, so the expected rewards can be worked out by hand below."""

from __future__ import annotations

import json
import re

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from traject.rewards.checklist import (Checklist, ChecklistConfig, ChecklistReward, FocusOn, TurnChecklist,
                                       count_items)
from traject.rewards.checklist.conversation import segment
from traject.rewards.judge import JudgeConfig, LLMJudge
from traject.testing import ScriptedReply
from traject.types import Message, Step, Task, ToolCall, ToolResult, Trajectory


def item(iid, question, focus, weight, deps=(), required=False):
    return {"id": iid, "question": question, "focus_on": focus, "pass_condition": f"pass {iid}",
            "failure_examples": [f"fail {iid}"], "evidence": [{"turn": 0, "step": 0, "from": focus, "snippet": "s"}],
            "required_for_next_turn": required, "dependence": list(deps), "weight": weight}


CHECKLIST = [
    {"turn": 0, "items": [item("C0", "Called weather for Paris?", "assistant.tool_calls", 0.3, required=True),
                          item("C1", "Got Paris temperature?", "tool.content", 0.3),
                          item("C2", "Reported 18 C?", "assistant.content.user_visible_reply", 0.4, ["C1"])]},
    {"turn": 1, "items": [item("D0", "Called weather for London?", "assistant.tool_calls", 0.5),
                          item("D1", "Reported 12 C?", "assistant.content.user_visible_reply", 0.5, ["D0"])]},
    {"turn": 2, "items": [item("E0", "Said goodbye?", "assistant.content.user_visible_reply", 1.0)]},
]

# (question, step within the turn) -> the judge's answer; anything else: false.
TABLE = {
    ("Called weather for Paris?", 0): True, ("Got Paris temperature?", 0): True,
    ("Reported 18 C?", 1): True,
    # turn 1: step 0's call fails (no judge call for D0); the judge "hallucinates" D1 at step 0,
    # before D0 counts, so it does not count; D0 counts at step 1; D1 is never satisfied again.
    ("Reported 12 C?", 0): True, ("Called weather for London?", 1): True,
    ("Called weather for London?", 2): True,
}


def table_judge(req):
    prompt = req.last_user_text
    question = re.search(r"^Question: (.*)$", prompt, re.M).group(1)
    current = prompt.split("# Current turn")[1]
    step = int(re.findall(r"## Step: (\d+)", current)[-1])
    answer = TABLE.get((question, step), False)
    return json.dumps({"high_level_understanding_of_the_question": question,
                       "analysis_of_if_focus_on": f"step {step}", "analysis_of_pass_condition": "checked",
                       "analysis_of_failure_examples": "none triggered", "answer": answer})


def call(cid, city):
    return ToolCall(id=cid, name="weather", arguments={"city": city})


def conversation():
    """Two user turns reached of the reference's three; 5 policy steps."""
    system = Message.system("You help with weather.")
    u0 = Message.user("Weather in Paris?")
    steps = [
        (Message.assistant("", tool_calls=[call("c1", "Paris")], reasoning="need weather"),
         [Message.tool("18 C", tool_call_id="c1", name="weather")],
         [ToolResult(call_id="c1", name="weather", content="18 C")]),
        (Message.assistant("It is 18 C in Paris."), [Message.user("And London?")], []),
        (Message.assistant("", tool_calls=[call("c2", "Londn")]),
         [Message.tool("Error: unknown city", tool_call_id="c2", name="weather")],
         [ToolResult(call_id="c2", name="weather", content="Error: unknown city", is_error=True, error_kind="raised")]),
        (Message.assistant("", tool_calls=[call("c3", "London")]),
         [Message.tool("12 C", tool_call_id="c3", name="weather")],
         [ToolResult(call_id="c3", name="weather", content="12 C")]),
        (Message.assistant("<think>done</think>London is warm."), [], []),
    ]
    messages = [system, u0]
    traj_steps = []
    for k, (action, obs, results) in enumerate(steps):
        messages.append(action)
        messages.extend(obs)
        traj_steps.append(Step(index=k, action=action, observations=obs, tool_results=results))
    return Trajectory(task_id="w", messages=messages, steps=traj_steps)


TASK = Task(id="w", data={"checklist": CHECKLIST})


def reward_for(server, **cfg):
    judge = LLMJudge(JudgeConfig(base_url=server.url, model="judge", backoff_s=0.01, parse_retries=0))
    return ChecklistReward(judge, ChecklistConfig(**cfg))


@pytest.mark.anyio
async def test_worked_example_trajectory_and_turn_level(chat_server):
    server = chat_server(table_judge)
    reward = reward_for(server)
    r = await reward.score(conversation(), TASK)
    # turn 0: C0, C1 at step 0, C2 at step 1 (C1 counted) -> 1.0
    # turn 1: D0 at step 1 (step 0 had a tool error), D1 only at step 0 before D0 -> 0.5
    # turn 2 never reached -> 0.  total = (1.0 + 0.5 + 0) / 3
    assert r.per_turn == pytest.approx([1.0, 0.5, 0.0])
    assert r.total == pytest.approx(0.5)
    assert not r.failed and r.success is False
    # 2 steps x 3 items + 3 steps x 2 items - 1 short-circuited by the tool error
    assert len(server.requests) == 11
    sc = [j for j in r.info["judgements"] if j["source"] == "tool_error"]
    assert [(j["turn"], j["step"], j["item"]) for j in sc] == [(1, 0, "D0")]
    turn1 = r.info["turns"][1]
    assert turn1["counted"] == {"D0": 1} and turn1["unmet"] == ["D1"]
    assert any("step 1" in j["rationale"] for j in r.info["judgements"] if j["item"] == "C2")

    # turn-level mode: the turn's reward / N at its last step; the judge cache answers everything
    turn_level = ChecklistReward(reward.judge, ChecklistConfig(level="turn"))
    r2 = await turn_level.score(conversation(), TASK)
    assert len(server.requests) == 11
    assert r2.per_step == pytest.approx([0.0, 1 / 3, 0.0, 0.0, 0.5 / 3])
    assert sum(r2.per_step) == pytest.approx(r2.total) == pytest.approx(0.5)


@pytest.mark.anyio
async def test_prompt_carries_the_turn_so_far_and_the_item(chat_server):
    server = chat_server(table_judge)
    await reward_for(server).score(conversation(), TASK)
    prompts = [r.last_user_text for r in server.requests]
    p = next(p for p in prompts if "Reported 12 C?" in p and "## Step: 2" in p.split("# Current turn")[1])
    history, current = p.split("# Current turn")
    assert "Weather in Paris?" in history and "It is 18 C in Paris." in history
    assert "# Turn: 1" in current and "And London?" in current and "12 C" in current
    assert "content.thinking: done" in current and "content.user_visible_reply: London is warm." in current
    assert "fail D1" in p and "pass D1" in p
    body = server.requests[0].body
    assert body["response_format"]["json_schema"]["schema"]["required"][-1] == "answer"


@pytest.mark.anyio
async def test_garbage_judge_fails_the_reward_not_zero(chat_server):
    server = chat_server(lambda req: "Sure! The assistant did great :)")
    r = await reward_for(server).score(conversation(), TASK)
    assert r.failed and r.total == 0.0 and "checklist judge" in r.error


@pytest.mark.anyio
async def test_broken_endpoint_fails_the_reward(chat_server):
    server = chat_server(lambda req: ScriptedReply(status=500))
    judge = LLMJudge(JudgeConfig(base_url=server.url, max_retries=1, backoff_s=0.01))
    r = await ChecklistReward(judge).score(conversation(), TASK)
    assert r.failed and "HTTP 500" in r.error


@pytest.mark.anyio
async def test_end_of_turn_required_items(chat_server):
    traj = conversation()
    server = chat_server(table_judge)
    reward = reward_for(server)
    turn0 = traj.messages[:5]  # system, user, call, tool, reply
    check = await reward.end_of_turn(TASK, turn0)
    assert check.turn == 0 and check.passed and not check.end_episode
    assert len(server.requests) == 2  # only the required C0, at its two steps

    failing = {**TABLE, ("Called weather for Paris?", 0): False}
    server2 = chat_server(lambda req: table_judge(req) if "Paris?" not in req.last_user_text else
                          json.dumps({**json.loads(table_judge(req)), "answer": failing.get(
                              (re.search(r"^Question: (.*)$", req.last_user_text, re.M).group(1),
                               int(re.findall(r"## Step: (\d+)", req.last_user_text.split("# Current turn")[1])[-1])),
                              False)}))
    check = await reward_for(server2).end_of_turn(TASK, turn0)
    assert check.failed_required == ["C0"] and check.end_episode
    relaxed = await reward_for(server2, end_episode_on_required_failure=False).end_of_turn(TASK, turn0)
    assert not relaxed.passed and not relaxed.end_episode


@pytest.mark.anyio
async def test_end_of_turn_then_score_reuses_the_cache(chat_server):
    traj = conversation()
    server = chat_server(table_judge)
    reward = reward_for(server, end_of_turn_items="all")
    await reward.end_of_turn(TASK, traj.messages[:5])
    assert len(server.requests) == 6
    await reward.score(traj, TASK)
    assert len(server.requests) == 11


def test_validation_errors_are_clear():
    bad = [{"turn": 0, "items": [item("A", "q", "tool.content", 0.5), item("B", "q", "tool.content", 0.4)]}]
    with pytest.raises(ValueError, match="sum to 1, they sum to 0.9"):
        Checklist.model_validate(bad)
    assert Checklist.normalized(bad).turns[0].items[0].weight == pytest.approx(0.5 / 0.9)
    cyc = [{"turn": 0, "items": [item("A", "q", "tool.content", 0.5, ["B"]), item("B", "q", "tool.content", 0.5, ["A"])]}]
    with pytest.raises(ValueError, match="cycle"):
        Checklist.model_validate(cyc)
    with pytest.raises(ValueError, match="depends on 'Z'"):
        Checklist.model_validate([{"items": [item("A", "q", "tool.content", 1.0, ["Z"])]}])
    with pytest.raises(ValueError, match=r"task 'x' has no checklist: task.data\['checklist'\]"):
        Checklist.from_task_data({}, source="task 'x'")
    with pytest.raises(ValueError, match=r"not a valid checklist at turns.0.items.0.focus_on"):
        Checklist.from_task_data({"checklist": [{"items": [{**item("A", "q", "tool.content", 1.0),
                                                             "focus_on": "elsewhere"}]}]})


def test_cm2_file_shape_loads():
    turn = {"turn": 0, "checklist": [
        {"id": "C0", "evidence": [{"turn": 0, "step": 1, "from": "tool.content", "snippet": "x"}],
         "focus_on": "tool.content", "question": "q", "pass_condition": "p", "failure_examples": [],
         "required_for_next_turn": True}],
        "dependence": {"C0": []}, "weight": {"C0": 1.0}}
    c = Checklist.model_validate([turn])
    assert c.turns[0].items[0].evidence[0].source is FocusOn.TOOL_CONTENT


def test_segmentation():
    conv = segment(conversation().messages, [ToolResult(call_id="c2", name="weather", content="e", is_error=True)])
    assert [(s.turn, s.step, s.tool_error) for s in conv.steps] == [
        (0, 0, False), (0, 1, False), (1, 0, True), (1, 1, False), (1, 2, False)]
    only_format = segment(conversation().messages, [ToolResult(call_id="c2", name="weather", content="e",
                                                               is_error=True, error_kind="raised")], ["format"])
    assert not any(s.tool_error for s in only_format.steps)


# -- properties ------------------------------------------------------------------------------

@st.composite
def turn_and_results(draw):
    n = draw(st.integers(1, 6))
    raw_w = draw(st.lists(st.floats(0.01, 1.0), min_size=n, max_size=n))
    items = []
    for i in range(n):
        deps = draw(st.lists(st.integers(0, i - 1), max_size=2, unique=True)) if i else []
        items.append(item(f"I{i}", "q", "tool.content", raw_w[i] / sum(raw_w), [f"I{d}" for d in deps]))
    turn = Checklist.normalized([{"items": items}]).turns[0]
    steps = draw(st.integers(1, 4))
    results = [{f"I{i}": draw(st.booleans()) for i in range(n)} for _ in range(steps)]
    return turn, results


def turn_reward(turn: TurnChecklist, results) -> float:
    counted = count_items(turn, results)
    return sum(i.weight for i in turn.items if i.id in counted)


@settings(max_examples=150, deadline=None)
@given(turn_and_results(), st.data())
def test_property_satisfying_an_item_never_lowers_the_reward(tr, data):
    turn, results = tr
    before = turn_reward(turn, results)
    assert -1e-9 <= before <= 1 + 1e-9
    s = data.draw(st.integers(0, len(results) - 1))
    iid = data.draw(st.sampled_from([i.id for i in turn.items]))
    flipped = [dict(r) for r in results]
    flipped[s][iid] = True
    assert turn_reward(turn, flipped) >= before - 1e-12


@settings(max_examples=100, deadline=None)
@given(turn_and_results(), st.floats(0.01, 0.99))
def test_property_adding_a_satisfied_item_never_lowers_the_reward(tr, w):
    turn, results = tr
    before = turn_reward(turn, results)
    items = [{**i.model_dump(by_alias=True), "weight": i.weight * (1 - w)} for i in turn.items]
    items.append(item("NEW", "q", "tool.content", w))
    bigger = TurnChecklist.model_validate({"items": items})
    after = turn_reward(bigger, [{**r, "NEW": True} for r in results])
    assert after >= before - 1e-9
    assert after <= 1 + 1e-9


@pytest.mark.anyio
async def test_several_checklists_are_averaged(chat_server):
    # CM2 annotates several checklists per task and averages them. Checklist B reuses A's items
    # (so the judge's cache answers them) with other weights and no dependences:
    # B turn 0: C0 (s0) + C2 (s1) = 1.0; turn 1: D1 counts at s0 (no dependence) = 1.0; turn 2: 0
    b = [{"turn": 0, "items": [{**item("C0", "Called weather for Paris?", "assistant.tool_calls", 0.5, required=True)},
                               {**item("C2", "Reported 18 C?", "assistant.content.user_visible_reply", 0.5)}]},
         {"turn": 1, "items": [item("D1", "Reported 12 C?", "assistant.content.user_visible_reply", 1.0,
                                    required=True)]},
         CHECKLIST[2]]
    server = chat_server(table_judge)
    reward = reward_for(server)
    task = Task(id="w", data={"checklist": [CHECKLIST, b]})
    r = await reward.score(conversation(), task)
    assert r.total == pytest.approx((0.5 + 2 / 3) / 2)
    assert r.per_turn == pytest.approx([1.0, 0.75, 0.0])
    assert r.components["checklists"] == 2
    assert len(server.requests) == 11       # B's prompts are A's: all from the cache
    assert {j["checklist"] for j in r.info["judgements"]} == {0, 1}
    one = await ChecklistReward(reward.judge, ChecklistConfig(max_checklists=1)).score(conversation(), task)
    assert one.total == pytest.approx(0.5)
    uneven = Task(id="w", data={"checklist": [CHECKLIST, b[:2]]})
    assert "different numbers of turns" in (await reward.score(conversation(), uneven)).error


@pytest.mark.anyio
async def test_end_of_turn_majority_over_checklists(chat_server):
    # turn 1 ends with D0 counted at step 1 but D1 never: a checklist requiring D1 fails the turn.
    def with_required(d1_required: bool):
        c = [dict(t) for t in CHECKLIST]
        c[1] = {"turn": 1, "items": [item("D0", "Called weather for London?", "assistant.tool_calls", 0.5),
                                     item("D1", "Reported 12 C?", "assistant.content.user_visible_reply", 0.5,
                                          ["D0"], required=d1_required)]}
        return c

    traj = conversation()
    results = [r for s in traj.steps for r in s.tool_results]
    reward = reward_for(chat_server(table_judge))
    one_of_two = Task(id="w", data={"checklist": [with_required(True), with_required(False)]})
    check = await reward.end_of_turn(one_of_two, traj.messages, results)
    assert check.turn == 1 and check.passed and check.failed_required == ["D1#0"]
    two_of_three = Task(id="w", data={"checklist": [with_required(True), with_required(True), with_required(False)]})
    check = await reward.end_of_turn(two_of_three, traj.messages, results)
    assert not check.passed and check.end_episode
