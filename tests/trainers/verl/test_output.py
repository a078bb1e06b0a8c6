"""Trajectory -> veRL segments: prefix-consistent TokenViews become prompt/response pairs;
untrainable trajectories give none; reward info keys stay uniform where veRL needs it."""

from __future__ import annotations

import json

from traject.agents.tokens import build_token_views
from traject.trainers.verl.output import convert
from traject.types import Generation, Message, RewardResult, Status, Trajectory


def _traj(prefix_break: bool = False, **kw) -> Trajectory:
    g1 = Generation(prompt_ids=[1, 2, 3], completion_ids=[10, 11], logprobs=[-0.1, -0.2])
    p2 = [9, 9, 9, 9] if prefix_break else [1, 2, 3, 10, 11, 20, 21]
    g2 = Generation(prompt_ids=p2, completion_ids=[12], logprobs=[-0.3])
    msgs = [Message.user("q"), Message.assistant("a", generation=g1), Message.tool("r", tool_call_id="c", name="t"),
            Message.assistant("b", generation=g2)]
    t = Trajectory(task_id="t", messages=msgs, reward=RewardResult(total=1.0, components={"m": 1.0}), **kw)
    t.token_views = build_token_views(msgs)
    return t


def test_one_segment_response_mask_and_logprobs():
    conv = convert(_traj(), prompt_length=10, response_length=10)
    assert conv.trainable and conv.reward == 1.0 and len(conv.segments) == 1
    s = conv.segments[0]
    assert s.prompt_ids == [1, 2, 3]
    assert s.response_ids == [10, 11, 20, 21, 12]
    assert s.response_mask == [1, 1, 0, 0, 1]
    assert s.response_logprobs == [-0.1, -0.2, 0.0, 0.0, -0.3]


def test_prefix_break_gives_two_segments_and_long_prompts_are_dropped():
    conv = convert(_traj(prefix_break=True), prompt_length=10, response_length=10)
    assert [s.prompt_ids for s in conv.segments] == [[1, 2, 3], [9, 9, 9, 9]]
    assert [s.response_mask for s in conv.segments] == [[1, 1], [1]]
    short = convert(_traj(prefix_break=True), prompt_length=3, response_length=10)
    assert len(short.segments) == 1 and short.dropped_segments == 1


def test_untrainable_trajectories_give_no_segments():
    infra = convert(_traj(status=Status.INFRA_ERROR, error="sandbox died"), prompt_length=10, response_length=10)
    assert not infra.trainable and infra.segments == [] and "sandbox died" in infra.reasons[0]
    assert infra.reward_info["traject_infra_error"] == 1.0 and infra.reward == 0.0
    t = _traj()
    t.reward = RewardResult(failed=True, error="judge said nonsense")
    assert not convert(t, prompt_length=10, response_length=10).trainable


def test_reward_info_keys():
    ok = convert(_traj(), prompt_length=10, response_length=10)
    assert ok.reward_info["traject_m"] == 1.0 and json.loads(ok.reward_info["traject_components"]) == {"m": 1.0}
    legacy = convert(_traj(), prompt_length=10, response_length=10, uniform_keys=True)
    assert "traject_m" not in legacy.reward_info
    declared = convert(_traj(status=Status.INFRA_ERROR), prompt_length=10, response_length=10,
                       components=["m", "n"], uniform_keys=True)
    assert declared.reward_info["traject_m"] == 0.0 and declared.reward_info["traject_n"] == 0.0
    assert set(declared.reward_info) == set(convert(_traj(), prompt_length=10, response_length=10,
                                                    components=["m", "n"], uniform_keys=True).reward_info)
