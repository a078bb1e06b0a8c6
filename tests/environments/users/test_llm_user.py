import json

import pytest

from traject.agents import AgentLoop, ScriptedPolicy
from traject.environments import ToolEnv
from traject.environments.users import LLMUser, ResponseCache, SimulatorLLM, SimulatorLLMConfig
from traject.episode import EpisodeInfo, reset_episode, set_episode
from traject.testing import ScriptedReply
from traject.tools import tool
from traject.types import InfraError, Message, Status, Task, ToolCall

SCENARIO = {"persona": "Terse.", "instructions": {
    "reason_for_call": "You want to cancel order W7 because the blue kettle you ordered arrived dented and unusable.",
    "known_info": "Your email is ana@example.com.", "unknown_info": "You do not know your customer id.",
    "task_instructions": "Confirm when asked."}}
TASK = Task(id="t1", data={"user_scenario": SCENARIO})


OPEN: list[SimulatorLLM] = []


@pytest.fixture(autouse=True)
async def close_clients():
    yield
    while OPEN:
        await OPEN.pop().aclose()


def llm(server, cache=None, **kw) -> SimulatorLLM:
    made = SimulatorLLM(SimulatorLLMConfig(base_url=server.url, model="user", backoff_s=0.0, **kw),
                        cache=cache if cache is not None else ResponseCache())
    OPEN.append(made)
    return made


def roles(body):
    return [m["role"] for m in body["messages"]]


@pytest.mark.anyio
async def test_opens_hears_only_the_agents_words_and_stops(chat_server):
    server = chat_server(["Hi, I need to cancel an order.", "It's W7. ###STOP###"])
    user = LLMUser(llm(server))
    opening = await user.reset(TASK)
    assert opening.role == "user" and opening.text == "Hi, I need to cancel an order."
    first = server.requests[0].body
    # the user model sees its scenario in the system prompt and the agent's greeting as "user"
    assert roles(first) == ["system", "user"] and "cancel order W7" in first["messages"][0]["content"]
    conversation = [
        Message.system("policy"), opening,
        Message.assistant("<think>look it up</think>", tool_calls=[ToolCall(name="get_order", arguments={"id": "x"})]),
        Message.tool("{...secret db row...}", tool_call_id="c", name="get_order"),
        Message.assistant("<think>ask for the id</think>Which order?"),
    ]
    turn = await user.respond(conversation)
    assert turn.done and turn.message.text == "It's W7." and turn.state["stopped_by"] == "###STOP###"
    body = server.requests[1].body
    assert roles(body) == ["system", "user", "assistant", "user"]
    assert body["messages"][-1]["content"] == "Which order?"  # no thoughts, no tool traffic
    assert "secret" not in json.dumps(body) and "look it up" not in json.dumps(body)


@pytest.mark.anyio
async def test_bare_stop_marker_ends_without_a_message(chat_server):
    server = chat_server(["Hello.", "###STOP###"])
    user = LLMUser(llm(server))
    await user.reset(TASK)
    turn = await user.respond([Message.assistant("Done, goodbye.")])
    assert turn.done and turn.message is None


@pytest.mark.anyio
async def test_user_tools_dual_control(chat_server):
    seen = []

    @tool
    def read_label(order_id: str) -> str:
        """Read the label on a package.

        Args:
            order_id: The order.
        """
        seen.append(order_id)
        return "RL-1"

    server = chat_server(["Hi.", ScriptedReply(tool_calls=[("read_label", {"order_id": "W7"})]),
                          "The code is RL-1."])
    user = LLMUser(llm(server), tools=[read_label])
    await user.reset(TASK)
    turn = await user.respond([Message.assistant("Please read the label code.")])
    assert seen == ["W7"] and turn.message.text == "The code is RL-1." and not turn.done
    assert turn.state["user_tool_calls"][0]["result"] == "RL-1"
    third = server.requests[2].body
    assert roles(third)[-2:] == ["assistant", "tool"] and third["messages"][-1]["content"] == "RL-1"
    assert {t["function"]["name"] for t in third["tools"]} == {"read_label"}


@pytest.mark.anyio
async def test_breaking_character_is_retried(chat_server):
    server = chat_server(["Hi.", "As an AI language model, I can help you with that.", "Order W7, please."])
    user = LLMUser(llm(server))
    await user.reset(TASK)
    turn = await user.respond([Message.assistant("How can I help?")])
    assert turn.message.text == "Order W7, please." and len(server.requests) == 3
    # the retry used another sampling seed only when an episode seed exists; here none was sent
    assert "seed" not in server.requests[2].body


@pytest.mark.anyio
@pytest.mark.parametrize("bad", [
    ["Hi.", "Assistant: How may I help you today?", "   "],                            # out of character, empty
    ["Hi.", ScriptedReply(status=500, content="down"), ScriptedReply(status=503)],    # endpoint fails
    ["Hi.", "You want to cancel order W7 because the blue kettle you ordered arrived dented and unusable.",
     "You want to cancel order W7 because the blue kettle you ordered arrived dented and unusable."],  # leaks
])
async def test_unusable_user_is_an_infra_error(chat_server, bad):
    server = chat_server(bad)
    user = LLMUser(llm(server))
    await user.reset(TASK)
    with pytest.raises(InfraError, match="no usable answer"):
        await user.respond([Message.assistant("How can I help?")])
    assert len(server.requests) == 3  # one retry, then give up


@pytest.mark.anyio
async def test_failing_user_marks_the_episode_infra_error_not_the_agents_failure(chat_server):
    server = chat_server(["Hi, cancel W7 please.", ScriptedReply(status=500), ScriptedReply(status=500)])
    env = ToolEnv([], name="chat", user=LLMUser(llm(server)), max_turns=4)
    traj = await AgentLoop(ScriptedPolicy([Message.assistant("Sure, which email?")])).run(env, TASK)
    assert traj.status is Status.INFRA_ERROR and "user simulator" in traj.error
    assert traj.reward is None and not traj.trainable


@pytest.mark.anyio
async def test_responses_are_cached_by_conversation_and_seed(chat_server):
    counter = {"n": 0}

    def responder(req):
        counter["n"] += 1
        return f"answer {counter['n']}"

    server = chat_server(responder)
    cache = ResponseCache()

    async def episode(seed):
        token = set_episode(EpisodeInfo("ep", "t1", 0, seed))
        try:
            user = LLMUser(llm(server, cache))
            opening = await user.reset(TASK)
            turn = await user.respond([opening, Message.assistant("Which order?")])
            return opening.text, turn.message.text
        finally:
            reset_episode(token)

    first = await episode(seed=11)
    assert len(server.requests) == 2 and isinstance(server.requests[0].body["seed"], int)
    assert await episode(seed=11) == first and len(server.requests) == 2  # replayed from the cache
    other = await episode(seed=12)
    assert other != first and len(server.requests) == 4


@pytest.mark.anyio
async def test_cache_file_replays_in_a_new_process(chat_server, tmp_path):
    server = chat_server(["Hello there."])
    path = tmp_path / "user_cache.jsonl"
    token = set_episode(EpisodeInfo("ep", "t1", 0, 5))
    try:
        assert (await LLMUser(llm(server, ResponseCache(path))).reset(TASK)).text == "Hello there."
        # a fresh cache object on the same file (as a new process would make) replays it
        again = await LLMUser(llm(server, ResponseCache(path))).reset(TASK)
    finally:
        reset_episode(token)
    assert again.text == "Hello there." and len(server.requests) == 1


@pytest.mark.anyio
async def test_missing_scenario_and_missing_endpoint(monkeypatch):
    monkeypatch.delenv("TRAJECT_USER_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="user_scenario"):
        await LLMUser(SimulatorLLMConfig()).reset(Task(id="x"))
    with pytest.raises(InfraError, match="TRAJECT_USER_BASE_URL"):
        await LLMUser(SimulatorLLMConfig()).reset(TASK)
