import json

import pytest

from traject.agents import AgentLoop, ScriptedPolicy
from traject.environments.simulated_tools import RecordedCall, SimulatedTool, make_simulated_tools_env
from traject.environments.users import ResponseCache, SimulatorLLM, SimulatorLLMConfig
from traject.tools import ToolContext
from traject.types import InfraError, Message, Status, Task, ToolCall, ToolSchema

WEATHER = ToolSchema(name="get_weather", description="Weather for a city on a date.", parameters={
    "type": "object", "additionalProperties": False, "required": ["city"],
    "properties": {"city": {"type": "string"}, "date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
                   "units": {"type": "string", "enum": ["C", "F"]}}})
RECORDS = [RecordedCall(name="get_weather", arguments={"city": "Oslo", "date": "2025-01-02"}, result={"temp": -3, "sky": "snow"}),
           RecordedCall(name="get_weather", arguments={"city": "Lima"}, result={"temp": 19, "sky": "cloudy"})]
CTX = ToolContext(task=Task(id="t"), episode_id="e")


@pytest.fixture
async def llm_for():
    made: list[SimulatorLLM] = []
    yield lambda server: made.append(SimulatorLLM(SimulatorLLMConfig(base_url=server.url, backoff_s=0.0),
                                                  cache=ResponseCache())) or made[-1]
    for m in made:
        await m.aclose()


@pytest.mark.anyio
async def test_replay_then_schema_then_model(chat_server, llm_for):
    server = chat_server(['Here you go: {"temp": 24, "sky": "sunny"}'])
    weather = SimulatedTool(WEATHER, records=RECORDS, llm=llm_for(server))
    # 1. replay: argument order does not matter (canonical JSON)
    out = await weather(CTX, {"date": "2025-01-02", "city": "Oslo"})
    assert json.loads(out.content) == {"temp": -3, "sky": "snow"} and out.metadata["source"] == "replay"
    # 2. schema errors: structured, every violation, no model call
    out = await weather(CTX, {"date": "tomorrow", "units": "K", "extra": 1})
    error = json.loads(out.content)
    assert out.is_error and out.metadata["source"] == "schema" and error["tool"] == "get_weather"
    paths = {p["path"] for p in error["problems"]}
    assert paths == {"(arguments)", "date", "units"}  # missing city and the extra key are on the object
    assert len(server.requests) == 0
    # 3. the model, with the recorded calls as examples
    out = await weather(CTX, {"city": "Rome"})
    assert json.loads(out.content) == {"temp": 24, "sky": "sunny"} and out.metadata["source"] == "simulator"
    prompt = server.requests[0].messages[1]["content"]
    assert '"city":"Oslo"' in prompt and '"sky": "snow"' in prompt and 'New call: {"city":"Rome"}' in prompt


@pytest.mark.anyio
async def test_simulator_without_json_is_an_infra_error(chat_server, llm_for):
    server = chat_server(["sunny and warm", "I think it is nice"])
    weather = SimulatedTool(WEATHER, llm=llm_for(server))
    with pytest.raises(InfraError, match="did not answer with a JSON result"):
        await weather(CTX, {"city": "Rome"})


@pytest.mark.anyio
async def test_cm2_style_episode_with_scripted_user(chat_server):
    server = chat_server(['{"temp": 11, "sky": "rain"}'])
    task = Task(id="cm2-1", data={"tools": [WEATHER.model_dump()], "tool_records": [r.model_dump() for r in RECORDS],
                                  "user_turns": ["Weather in Oslo on 2025-01-02?", "And in Bergen?"]})
    policy = ScriptedPolicy([
        Message.assistant(tool_calls=[ToolCall(name="get_weather", arguments={"city": "Oslo", "date": "2025-01-02"})]),
        Message.assistant("-3 and snow."),
        Message.assistant(tool_calls=[ToolCall(name="get_weather", arguments={"city": "Bergen"})]),
        Message.assistant("11 and rain."),
    ])
    env = make_simulated_tools_env(tool_base_url=server.url)
    traj = await AgentLoop(policy).run(env, task)
    assert traj.status is Status.COMPLETED and traj.num_turns == 4
    tool_texts = [m.text for m in traj.messages if m.role == "tool"]
    assert [json.loads(t) for t in tool_texts] == [{"temp": -3, "sky": "snow"}, {"temp": 11, "sky": "rain"}]
    assert [s.tool_results[0].metadata["source"] for s in traj.steps if s.tool_results] == ["replay", "simulator"]
    assert [m.text for m in traj.messages if m.role == "user"] == task.data["user_turns"]
