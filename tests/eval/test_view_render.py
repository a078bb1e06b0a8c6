from traject.eval.view.overlay import Mark, action_marks, overlay_svg
from traject.eval.view.render import find_key, judgements, user_turns
from traject.types import Message, RewardResult, Step, ToolCall, Trajectory


def test_user_turns_count_as_the_checklist_does():
    a = [Message.assistant("", tool_calls=[ToolCall(name="t")]) for _ in range(4)]
    tool = Message.tool("r", tool_call_id="x", name="t")
    msgs = [Message.system("s"), Message.user("u1"), a[0], tool, a[1], Message.user("u2"), a[2], tool, a[3]]
    steps = [Step(index=i, action=a[i]) for i in range(4)]
    assert user_turns(Trajectory(task_id="t", messages=msgs, steps=steps)) == {0: (0, 0), 1: (0, 1), 2: (1, 0), 3: (1, 1)}


def test_reward_details_are_found_where_combinators_nest_them():
    r = RewardResult(info={"quality": {"checklist": {"judgements": [{"turn": 0, "step": 0, "item": "a"}]}},
                           "emotion_trace": [1.0]})
    assert [j["item"] for j in judgements(r)] == ["a"]
    assert find_key(r.info, "emotion_trace") == [[1.0]]
    assert find_key({"a": {"b": {"c": {"d": {"e": 1}}}}}, "e") == []  # deeper than it looks


def test_action_marks_read_the_usual_argument_shapes():
    assert action_marks({"coordinate": [10, 20]}) == [Mark("point", (10.0, 20.0))]
    assert action_marks({"x": 1, "y": 2, "end_x": 3, "end_y": 4}) == [Mark("drag", (1.0, 2.0, 3.0, 4.0))]
    assert action_marks({"bbox": [0, 0, 5, 5]}) == [Mark("box", (0.0, 0.0, 5.0, 5.0))]
    assert action_marks({"text": "hi"}) == []
    svg = overlay_svg([Mark("point", (0.5, 0.25))], 200, 100, "tap")
    assert 'cx="100" cy="25"' in svg and ">tap</text>" in svg
