import pytest
from pydantic import ValidationError

from traject.types import (
    Generation, ImagePart, Message, RewardResult, Status, Step, Task, TextPart, TokenView,
    ToolCall, ToolResult, Trajectory,
)


def _full_trajectory() -> Trajectory:
    call = ToolCall(name="lookup", arguments={"item": "fig", "n": [1, 2, {"x": None}]})
    bad = ToolCall(name="", error="not JSON", raw="<tool_call>{oops")
    assistant = Message.assistant("hm", tool_calls=[call, bad], reasoning="think",
                                  generation=Generation(prompt_ids=[1, 2], completion_ids=[3, 4],
                                                        logprobs=[-0.1, -0.2], policy_version=3))
    image = Message.user([TextPart(text="see"), ImagePart(data="aGVsbG8=", width=2, height=2)])
    tool_msg = Message.tool("7", tool_call_id=call.id, name="lookup")
    return Trajectory(
        task_id="t1", sample_index=2, env="lookup",
        messages=[Message.system("s"), image, assistant, tool_msg],
        steps=[Step(index=0, action=assistant, observations=[tool_msg],
                    tool_results=[ToolResult(call_id=call.id, name="lookup", content="7", reward=0.5,
                                             metadata={"k": [1]})], reward=0.5, format_errors=1)],
        token_views=[TokenView(ids=[1, 2, 3, 4], mask=[0, 0, 1, 1], logprobs=[0, 0, -0.1, -0.2], prompt_len=2,
                               turn=[-1, -1, 0, 0])],
        reward=RewardResult(total=1.0, components={"a": 1.0}, per_step=[0.5], per_turn=[1.0], success=True,
                            info={"rationale": ["ok"]}),
        status=Status.MAX_TURNS, final_answer="7", info={"x": {"y": [1.5]}},
    )


def test_trajectory_json_round_trip():
    traj = _full_trajectory()
    again = Trajectory.model_validate_json(traj.model_dump_json())
    assert again == traj
    assert again.messages[1].images[0].data == "aGVsbG8="
    assert again.messages[2].tool_calls[1].error == "not JSON"


def test_message_text_skips_images():
    m = Message.user([TextPart(text="a"), ImagePart(url="http://127.0.0.1/x.png"), TextPart(text="b")])
    assert m.text == "ab" and len(m.images) == 1


def test_image_part_needs_one_source():
    with pytest.raises(ValidationError):
        ImagePart()
    with pytest.raises(ValidationError):
        ImagePart(data="x", url="y")


def test_token_view_lengths_are_checked():
    with pytest.raises(ValidationError, match="lengths differ"):
        TokenView(ids=[1, 2], mask=[1], logprobs=[0.0, 0.0])
    with pytest.raises(ValidationError, match="only 0 and 1"):
        TokenView(ids=[1], mask=[2], logprobs=[0.0])


def test_generation_logprobs_align():
    with pytest.raises(ValidationError, match="logprobs"):
        Generation(prompt_ids=[1], completion_ids=[2, 3], logprobs=[0.0])


def test_trainable():
    traj = _full_trajectory()
    assert traj.trainable
    assert not traj.model_copy(update={"status": Status.INFRA_ERROR}).trainable
    assert not traj.model_copy(update={"reward": RewardResult(failed=True)}).trainable
    assert not traj.model_copy(update={"reward": None}).trainable


def test_task_rejects_unknown_fields():
    with pytest.raises(ValidationError, match="extra"):
        Task(id="x", promt="typo")


def test_a_trajectory_stores_each_observation_once():
    from traject.types import Message, Step, ToolCall, ToolResult, Trajectory

    big = "y" * 100_000
    call = ToolCall(id="c1", name="read", arguments={})
    action = Message.assistant("", tool_calls=[call])
    obs = [Message.tool(big, tool_call_id="c1", name="read")]
    traj = Trajectory(task_id="t", messages=[Message.user("go"), action, *obs, Message.assistant("done")],
                      steps=[Step(index=0, action=action, observations=obs,
                                  tool_results=[ToolResult(call_id="c1", name="read", content=big)]),
                             Step(index=1, action=Message.assistant("done"))])
    text = traj.model_dump_json()
    assert text.count(big) == 1  # was 3: messages, step observations, tool result content
    back = Trajectory.model_validate_json(text)
    assert back == traj
    assert back.steps[0].observations[0].text == big and back.steps[0].tool_results[0].content == big
    # python-mode dumps keep the full shape
    assert traj.model_dump()["steps"][0]["observations"][0]["content"] == big
    # messages that do not line up with the steps are written in full
    odd = traj.model_copy(update={"messages": traj.messages[:1]})
    assert Trajectory.model_validate_json(odd.model_dump_json()) == odd
