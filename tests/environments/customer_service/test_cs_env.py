import json

import anyio
import pytest

import traject
from traject.agents import AgentLoop, ScriptedPolicy
from traject.agents.openai_policy import OpenAIPolicy
from traject.environments.users import default_cache
from traject.testing import ScriptedReply
from traject.types import Message, Status, ToolCall

RUN = "PLEASE_RUN:"


def user_endpoint(opening="Hi, I need help with an order."):
    """A scripted customer: opens, runs the user tool the agent asks for, says yes to confirmations,
    and stops when the agent says it is all done."""

    def respond(req):
        msgs = req.messages
        last = msgs[-1]
        if last["role"] == "tool":
            return f"I read it: {last['content']}"
        heard = last["content"] if last["role"] == "user" else ""
        if RUN in heard:
            call = json.loads(heard.split(RUN, 1)[1])
            return ScriptedReply(tool_calls=[(call["name"], call["arguments"])])
        if "All done" in heard:
            return "Thanks! ###STOP###"
        if "confirm" in heard.lower():
            return "yes"
        return opening

    return respond


def gold_script(task, corrupt=False):
    """The agent side of a task's gold actions: one tool call per turn; user actions are asked of the
    user; the closing message carries what must be communicated."""
    actions = task.data["gold_actions"]
    if corrupt:
        agent = [i for i, a in enumerate(actions) if a["requestor"] == "assistant"]
        if agent:
            actions = actions[:agent[-1]] + actions[agent[-1] + 1:]
    script = []
    for a in actions:
        if a["requestor"] == "user":
            script.append(Message.assistant(f"{RUN}{json.dumps({'name': a['name'], 'arguments': a['arguments']})}"))
        else:
            script.append(Message.assistant(tool_calls=[ToolCall(name=a["name"], arguments=a["arguments"])]))
    said = "" if corrupt else " ".join(task.data["communicate_info"])
    script.append(Message.assistant(f"All done. {said}".strip()))
    return script


@pytest.fixture(autouse=True)
def fresh_user_cache():
    default_cache().clear()  # scripted users differ per test; do not replay another test's answers
    yield


@pytest.fixture
async def policies():
    made: list[OpenAIPolicy] = []
    yield lambda server: made.append(OpenAIPolicy(model="agent", base_url=server.url)) or made[-1]
    for p in made:
        await p.aclose()


@pytest.mark.anyio
async def test_gold_replay_gets_full_reward_and_corrupted_replay_does_not(chat_server):
    user = chat_server(user_endpoint())
    tasks = traject.load_tasks("customer_service", split="all")
    assert len(tasks) == 12

    async def run(corrupt):
        out = {}

        async def one(task):
            env = traject.make("customer_service", user_base_url=user.url)
            out[task.id] = await AgentLoop(ScriptedPolicy(gold_script(task, corrupt))).run(env, task)

        async with anyio.create_task_group() as tg:
            for task in tasks:
                tg.start_soon(one, task)
        return out

    good = await run(corrupt=False)
    assert all(t.status is Status.COMPLETED for t in good.values()), [(k, t.status, t.error) for k, t in good.items()]
    assert {k: t.reward.components for k, t in good.items() if t.reward.total != 1.0} == {}
    assert all(t.steps[-1].info["db_match"] for t in good.values())
    bad = await run(corrupt=True)
    assert {k: t.reward.total for k, t in bad.items()} == {t.id: 0.0 for t in tasks}


@pytest.mark.anyio
async def test_episode_over_http_with_dual_control(chat_server, policies):
    """Task 3: the agent must ask the customer to read the return label with the customer's own tool."""
    task = next(t for t in traject.load_tasks("customer_service", split="all") if t.id == "shop/3")
    agent = chat_server([
        "Sure. What is your email?",
        ScriptedReply(tool_calls=[("find_customer_by_email", {"email": "oskar.lind@example.com"})]),
        ScriptedReply(tool_calls=[("get_order_details", {"order_id": "#O1003"})]),
        "Please read me the return label code on the package.",
        "To confirm: return the kettle (SKU-KET) from #O1003, refund 62 to gift card gift_12. Confirm?",
        ScriptedReply(tool_calls=[("return_delivered_order_items", {
            "order_id": "#O1003", "skus": ["SKU-KET"], "label_code": "RL-58213", "payment_method_id": "gift_12"})]),
        "The return is registered; 62 goes to your gift card.",
    ])
    customer = chat_server([
        "Hi, my new kettle leaks and I want to return it.",
        "oskar.lind@example.com",
        ScriptedReply(tool_calls=[("read_package_label", {"order_id": "#O1003"})]),
        "The code is RL-58213.",
        "Yes, please.",
        "Great, thanks. ###STOP###",
    ])
    env = traject.make("customer_service", user_base_url=customer.url)
    traj = await AgentLoop(policies(agent)).run(env, task)
    assert traj.status is Status.COMPLETED, traj.error
    assert traj.reward.total == 1.0 and traj.reward.components["DB"] == 1.0
    matches = [s.info["db_match"] for s in traj.steps]
    assert matches[-1] and not matches[0]  # the database reached the gold state only after the return
    label_step = next(s for s in traj.steps if "user_tool_calls" in s.info.get("user_state", {}))
    assert label_step.info["user_state"]["user_tool_calls"][0]["result"] == "RL-58213"
    # the agent never saw the user's tool call, only what the user said
    assert not any(m.role == "tool" and m.name == "read_package_label" for m in traj.messages)
    assert "RL-58213" in next(m.text for m in traj.messages if m.role == "user" and "RL-" in m.text)
    # the customer model got its scenario and the user tools; never the agent's tool traffic
    body = customer.requests[2].body
    assert "kettle from order #O1003 leaks" in body["messages"][0]["content"]
    assert [t["function"]["name"] for t in body["tools"]] == ["read_package_label"]
    assert "oskar.lind@example.com" not in json.dumps(body["messages"][1:]).replace(
        '"content": "oskar.lind@example.com"', "")  # only in the user's own message
    assert traj.steps[-1].info["db_state"]["db"]["orders"]["#O1003"]["status"] == "return requested"
    # the task's CM2 checklist, scored by the rewards library's ChecklistReward through the same basis rule
    from traject.environments.customer_service.reward import CustomerServiceReward
    from traject.rewards.checklist import ChecklistReward
    from traject.rewards.judge import JudgeConfig

    verdict = {"high_level_understanding_of_the_question": "q", "analysis_of_if_focus_on": "f",
               "analysis_of_pass_condition": "p", "analysis_of_failure_examples": "e", "answer": True}
    judge = chat_server(lambda req: json.dumps(verdict))
    reward = CustomerServiceReward(checklist=ChecklistReward(JudgeConfig(base_url=judge.url, model="j")))
    with_checklist = task.model_copy(update={"data": {**task.data, "reward_basis": ["DB", "CHECKLIST"]}})
    result = await reward.score(traj, with_checklist)
    assert result.total == 1.0 and result.components["CHECKLIST"] == 1.0 and len(judge.requests) >= 2
    assert (await CustomerServiceReward().score(traj, with_checklist)).failed  # no checklist reward given


@pytest.mark.anyio
async def test_gated_reward_counts_step_rewards_only_when_the_db_matches(chat_server):
    task = next(t for t in traject.load_tasks("customer_service", split="all") if t.id == "shop/0")
    customer = chat_server(user_endpoint())
    wrong = [Message.assistant(tool_calls=[ToolCall(name="find_customer_by_email", arguments={"email": "mara.quill@example.com"})]),
             Message.assistant(tool_calls=[ToolCall(name="cancel_pending_order",
                                                    arguments={"order_id": "#O1001", "reason": "ordered by mistake"})]),
             Message.assistant("All done.")]
    env = traject.make("customer_service", user_base_url=customer.url, reward="gated")
    traj = await AgentLoop(ScriptedPolicy(wrong)).run(env, task)
    assert traj.reward.components["ungated_total"] > 0 and traj.reward.total == 0.0
    right = wrong[:1] + [Message.assistant(tool_calls=[ToolCall(name="cancel_pending_order", arguments={
        "order_id": "#O1001", "reason": "no longer needed"})])] + wrong[2:]
    env = traject.make("customer_service", user_base_url=customer.url, reward="gated")
    traj = await AgentLoop(ScriptedPolicy(right)).run(env, task)
    assert traj.reward.total == pytest.approx(1.0 + 2 * 0.1)


@pytest.mark.anyio
@pytest.mark.parametrize("script", [
    ["Hi, cancel my order please.", "As an AI language model I cannot continue.", "I am an AI assistant."],
    ["Hi, cancel my order please.", "", "   "],
    ["Hi, cancel my order please.", ScriptedReply(status=500), ScriptedReply(status=502)],
])
async def test_broken_user_is_infra_error(chat_server, script):
    task = next(t for t in traject.load_tasks("customer_service", split="all") if t.id == "shop/0")
    customer = chat_server(script)
    env = traject.make("customer_service", user_base_url=customer.url)
    traj = await AgentLoop(ScriptedPolicy([Message.assistant("What is your email?")])).run(env, task)
    assert traj.status is Status.INFRA_ERROR and traj.reward is None and not traj.trainable


@pytest.mark.anyio
async def test_user_stop_ends_early_and_tool_errors_are_observations(chat_server):
    task = next(t for t in traject.load_tasks("customer_service", split="all") if t.id == "shop/1")
    customer = chat_server(["Cancel #O1002 now!", "Fine. ###STOP###"])
    script = [Message.assistant(tool_calls=[ToolCall(name="cancel_pending_order",
                                                     arguments={"order_id": "#O1002", "reason": "no longer needed"})]),
              Message.assistant(tool_calls=[ToolCall(name="cancel_pending_order", arguments={"order_id": "#O1002"})]),
              Message.assistant("It has shipped, so it cannot be cancelled."),
              Message.assistant("never reached")]
    env = traject.make("customer_service", user_base_url=customer.url)
    traj = await AgentLoop(ScriptedPolicy(script)).run(env, task)
    assert traj.status is Status.COMPLETED and traj.num_turns == 3
    assert traj.steps[0].observations[0].text == "Error: order #O1002 is shipped; only pending orders can be cancelled"
    assert traj.steps[1].tool_results[0].error_kind == "arguments"
    assert traj.reward.total == 1.0 and traj.reward.components == {"customer_service": 1.0, "DB": 1.0, "COMMUNICATE": 1.0}
