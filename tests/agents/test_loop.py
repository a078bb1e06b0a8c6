import socket

import anyio
import pytest

import traject
from traject.agents import AgentLoop, Rollouts, ScriptedPolicy, TrajectoryStore
from traject.agents.openai_policy import OpenAIPolicy
from traject.environments import ToolEnv
from traject.testing import ScriptedReply
from traject.tools import Toolset, tool
from traject.types import Message, Status, Task, ToolCall


@pytest.fixture
async def policies():
    made: list[OpenAIPolicy] = []
    yield made
    for p in made:
        await p.aclose()


def _policy(server, made=None, **kw) -> OpenAIPolicy:
    p = OpenAIPolicy(model="m", base_url=server.url, backoff_s=0.01, backoff_max_s=0.02, **kw)
    if made is not None:
        made.append(p)
    return p


@pytest.mark.anyio
async def test_lookup_episode_over_http(chat_server, policies):
    task = traject.load_tasks("lookup", n=1)[0]
    (a, qa), (b, qb) = task.data["order"]
    prices = task.data["prices"]
    server = chat_server([
        ScriptedReply(tool_calls=[("lookup", {"item": a}), ("lookup", {"item": b})]),
        ScriptedReply(content="I think.", tool_calls=[("submit", {"answer": task.answer})]),
    ])
    traj = await AgentLoop(_policy(server, policies)).run(traject.make("lookup"), task)
    assert traj.status is Status.COMPLETED and traj.success and traj.reward.total == 1.0
    assert traj.final_answer == str(task.answer)
    tool_texts = [m.text for m in traj.messages if m.role == "tool"]
    assert tool_texts[:2] == [str(prices[a]), str(prices[b])]
    assert traj.usage.model_calls == 2 and traj.usage.tool_calls == 3
    # the endpoint saw native tools and the tool results as tool messages
    req = server.requests[1].body
    assert {t["function"]["name"] for t in req["tools"]} == {"lookup", "submit"}
    assert [m["role"] for m in req["messages"]] == ["system", "user", "assistant", "tool", "tool"]
    assert traj.token_views == []  # an API policy gives no tokens: not trainable token-exactly


@pytest.mark.anyio
async def test_malformed_native_arguments_are_a_format_error(chat_server, policies):
    server = chat_server([
        ScriptedReply(tool_calls=[("lookup", '{"item": "fig"')]),
        ScriptedReply(tool_calls=[("submit", {"answer": 0})]),
    ])
    task = traject.load_tasks("lookup", n=1)[0]
    traj = await AgentLoop(_policy(server, policies)).run(traject.make("lookup"), task)
    assert traj.status is Status.COMPLETED
    assert traj.usage.format_errors == 1
    assert "not valid JSON" in traj.steps[0].observations[0].text
    # the botched call went back to the endpoint as the model wrote it
    assert server.requests[1].body["messages"][2]["tool_calls"][0]["function"]["arguments"] == '{"item": "fig"'


@pytest.mark.anyio
async def test_text_format_policy(chat_server, policies):
    server = chat_server([
        '<tool_call>\n{"name": "lookup", "arguments": {"item": "fig"}}\n</tool_call>',
        '<tool_call>\n{"name": "submit", "arguments": {"answer": 1}}\n</tool_call>',
    ])
    task = traject.load_tasks("lookup", n=1)[0]
    traj = await AgentLoop(_policy(server, policies, tool_format="hermes")).run(traject.make("lookup"), task)
    assert traj.status is Status.COMPLETED and traj.steps[0].action.tool_calls[0].name == "lookup"
    body = server.requests[1].body
    assert "tools" not in body and "<tools>" in body["messages"][0]["content"]
    assert body["messages"][-1]["role"] == "user" and "<tool_response>" in body["messages"][-1]["content"]


@pytest.mark.anyio
async def test_5xx_is_retried_then_infra_error(chat_server, policies):
    server = chat_server(lambda req: ScriptedReply(status=503, content="overloaded"))
    task = traject.load_tasks("lookup", n=1)[0]
    traj = await AgentLoop(_policy(server, policies, max_retries=2)).run(traject.make("lookup"), task)
    assert traj.status is Status.INFRA_ERROR and not traj.trainable and traj.reward is None
    assert "after 3 attempt(s)" in traj.error
    assert len(server.requests) == 3


@pytest.mark.anyio
async def test_transient_5xx_recovers(chat_server, policies):
    replies = iter([ScriptedReply(status=500), ScriptedReply(status=502),
                    ScriptedReply(tool_calls=[("submit", {"answer": 1})])])
    server = chat_server(lambda req: next(replies))
    traj = await AgentLoop(_policy(server, policies)).run(traject.make("lookup"), traject.load_tasks("lookup", n=1)[0])
    assert traj.status is Status.COMPLETED


@pytest.mark.anyio
async def test_endpoint_down_is_infra_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with OpenAIPolicy(model="m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=1, backoff_s=0.01) as pol:
        traj = await AgentLoop(pol).run(traject.make("lookup"), traject.load_tasks("lookup", n=1)[0])
    assert traj.status is Status.INFRA_ERROR and "APIConnectionError" in traj.error


class Tracked(Toolset):
    closed: list[str] = []

    async def setup(self, ctx):
        self.ctx = ctx

    async def teardown(self, ctx):
        Tracked.closed.append(ctx.task.id)

    @tool
    async def wait(self, seconds: float) -> str:
        """Wait."""
        await anyio.sleep(seconds)
        return "done"


def _waiting_policy(seconds: float) -> ScriptedPolicy:
    return ScriptedPolicy(lambda msgs, tools: Message.assistant("", tool_calls=[ToolCall(name="wait", arguments={"seconds": seconds})]))


@pytest.mark.anyio
async def test_episode_timeout_closes_env():
    Tracked.closed = []
    env = ToolEnv([Tracked], max_turns=100, tool_timeout_s=10)
    traj = await AgentLoop(_waiting_policy(0.05), episode_timeout_s=0.3).run(env, Task(id="slow", prompt="go"))
    assert traj.status is Status.TIMEOUT and Tracked.closed == ["slow"]
    assert 2 <= traj.num_turns <= 7


@pytest.mark.anyio
async def test_cancellation_closes_every_env():
    Tracked.closed = []
    tasks = [Task(id=f"c{i}", prompt="go") for i in range(6)]
    rollouts = Rollouts(_waiting_policy(10), lambda: ToolEnv([Tracked], tool_timeout_s=60), concurrency=4)
    with anyio.move_on_after(0.3):
        await rollouts.run(tasks)
    assert sorted(Tracked.closed) == ["c0", "c1", "c2", "c3"]


@pytest.mark.anyio
async def test_rollouts_stream_to_store_and_resume(tmp_path, chat_server, policies):
    tasks = traject.load_tasks("lookup", n=4)
    server = chat_server(lambda req: ScriptedReply(tool_calls=[("submit", {"answer": 1})]))
    store = TrajectoryStore(tmp_path / "t.jsonl")
    r = Rollouts(_policy(server, policies), "lookup", group_size=2, concurrency=3, store=store)
    first = await r.run(tasks[:2])
    assert len(first) == 4
    again = await Rollouts(_policy(server, policies), "lookup", group_size=2, store=store).run(tasks)
    assert len(again) == 4
    keys = [(t.task_id, t.sample_index) for t in store]
    assert len(keys) == 8 == len(set(keys))
    seeds = {t.seed for t in store}
    assert len(seeds) == 8


def test_store_cuts_a_torn_last_line(tmp_path):
    path = tmp_path / "t.jsonl"
    with TrajectoryStore(path) as store:
        from traject.types import Trajectory

        store.append_sync(Trajectory(task_id="a"))
    with open(path, "ab") as fh:
        fh.write(b'{"task_id": "b", "sampl')
    assert [t.task_id for t in TrajectoryStore(path)] == ["a"]
    assert path.read_bytes().endswith(b"}\n")


def test_store_names_the_bad_line(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"task_id": "a"}\n{"task_id": 5, "status": "weird"}\n')
    from traject.agents.store import StoreError

    with pytest.raises(StoreError, match=r"t.jsonl:2: "):
        list(TrajectoryStore(path))
