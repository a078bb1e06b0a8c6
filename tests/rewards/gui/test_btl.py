"""BTL-UI rewards: worked examples following the paper's definitions."""

from __future__ import annotations

import json

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from traject.rewards.gui import BTLConfig, BTLReward, BTLTarget, btl_score
from traject.types import Message, Step, Task, Trajectory

TAP = BTLTarget(bbox=[100, 200, 300, 260], action={"function": "Tap", "point_2d": [200, 230]}, image_size=(1000, 2000))


def answer(blink, action, *, fence=False, think="the search box is at the top"):
    b, a = json.dumps(blink), json.dumps([action] if not isinstance(action, list) else action)
    if fence:
        b, a = f"```json\n{b}\n```", f"```json\n{a}\n```"
    return f"<blink>{b}</blink>\n<think>{think}</think>\n<link>{a}</link>"


def tap(x, y, fn="Tap"):
    return {"Plan": "tap it", "Action": {"function": fn, "point_2d": [x, y]}}


def test_perfect_answer_scores_one():
    # IoU([105,205,295,255], target) = 190*50 / (200*60) = 0.79 > 0.5; the two regions do not overlap.
    # tap (210, 240): inside, distance sqrt((10/1000)^2 + (10/2000)^2) = 0.011 < 0.14
    s = btl_score(answer([{"bbox_2d": [105, 205, 295, 255]}, {"bbox_2d": [500, 500, 600, 600]}], tap(210, 240)), TAP)
    assert (s.format, s.blink, s.link, s.total) == (1.0, 1.0, 1.0, pytest.approx(1.0))
    assert btl_score(answer([{"bbox_2d": [105, 205, 295, 255]}], tap(210, 240), fence=True), TAP).total == pytest.approx(1.0)


def test_overlapping_predictions_lose_the_blink_reward():
    # IoU([100,200,300,260], [110,200,300,260]) = 190*60 / (200*60) = 0.95 >= 0.5
    s = btl_score(answer([{"bbox_2d": [100, 200, 300, 260]}, {"bbox_2d": [110, 200, 300, 260]}], tap(210, 240)), TAP)
    assert (s.format, s.blink, s.link) == (1.0, 0.0, 1.0)
    assert s.total == pytest.approx(0.1 + 0.6)


def test_blink_needs_iou_above_half_with_the_target():
    # IoU([100,200,200,260], target) = 100*60 / (200*60) = 0.5: not above 0.5
    s = btl_score(answer([{"bbox_2d": [100, 200, 200, 260]}], tap(210, 240)), TAP)
    assert s.blink == 0.0 and s.total == pytest.approx(0.7)
    no_region = TAP.model_copy(update={"bbox": None})
    assert btl_score(answer([], tap(210, 240)), no_region).blink == 1.0


def test_tap_inside_the_box_but_too_far_from_the_point():
    wide = BTLTarget(bbox=[0, 0, 1000, 100], action={"function": "Tap", "point_2d": [50, 50]}, image_size=(1000, 2000))
    far = btl_score(answer([{"bbox_2d": [0, 0, 1000, 100]}], tap(900, 50)), wide)    # 0.85 >= 0.14
    near = btl_score(answer([{"bbox_2d": [0, 0, 1000, 100]}], tap(150, 50)), wide)   # 0.10 < 0.14
    assert far.link == 0.0 and near.link == 1.0
    outside = btl_score(answer([{"bbox_2d": [0, 0, 1000, 100]}], tap(60, 100)), wide)  # on the edge: not strictly inside
    assert outside.link == 0.0
    assert btl_score(answer([], tap(210, 240, fn="long_press")), TAP).link == 0.0  # wrong action type


def test_swipe_type_and_buttons():
    swipe_t = BTLTarget(action={"function": "Swipe", "direction": "up"})
    by_points = {"Action": {"function": "swipe", "start_point_2d": [500, 1500], "end_point_2d": [520, 500]}}
    assert btl_score(answer([], by_points), swipe_t).link == 1.0      # dy=-1000 dominates: up
    assert btl_score(answer([], {"Action": {"function": "Swipe", "direction": "down"}}), swipe_t).link == 0.0
    type_t = BTLTarget(action={"function": "Type", "text": "Hello World"})
    # {hello, world, foo} vs {hello, world}: P = 2/3, R = 1, F1 = 0.8 >= 0.5
    assert btl_score(answer([], {"Action": {"function": "Type", "text": "hello world foo"}}), type_t).link == 1.0
    # {hello, there, you, all} vs {hello, world}: P = 1/4, R = 1/2, F1 = 1/3 < 0.5
    assert btl_score(answer([], {"Action": {"function": "Type", "text": "hello there you all"}}), type_t).link == 0.0
    back = BTLTarget(action={"function": "Back"})
    assert btl_score(answer([], {"Action": {"function": "Back"}}), back).total == pytest.approx(1.0)
    assert btl_score(answer([], {"Action": {"function": "Home"}}), back).link == 0.0


def test_format_failures():
    good = answer([{"bbox_2d": [105, 205, 295, 255]}], tap(210, 240))
    think_first = "<think>x</think>" + good.replace("<think>the search box is at the top</think>", "")
    bad = [think_first,
           good.replace('[{"bbox_2d"', '[{bbox_2d'),                                  # blink not JSON
           answer([{"bbox_2d": [105, 205, 295, 255]}], [tap(210, 240), tap(1, 1)]),    # two actions
           "just tap the search box"]
    for text in bad:
        s = btl_score(text, TAP)
        assert (s.format, s.blink, s.link, s.total) == (0.0, 0.0, 0.0, 0.0), text
        assert s.error
    assert btl_score("nothing", TAP.model_copy(update={"bbox": None})).total == pytest.approx(0.3)
    fenced_only = BTLConfig(require_code_fence=True)
    assert btl_score(good, TAP, fenced_only).format == 0.0


def test_grounding_point_and_weights():
    ground = BTLTarget(bbox=[10, 10, 50, 50])
    assert btl_score(answer([{"bbox_2d": [10, 10, 50, 50]}], {"point_2d": [30, 30]}), ground).total == pytest.approx(1.0)
    s = btl_score(answer([{"bbox_2d": [10, 10, 50, 50]}], {"point_2d": [60, 30]}), ground,
                  BTLConfig(format_weight=0.2, blink_weight=0.3, link_weight=0.5))
    assert s.total == pytest.approx(0.5)


def test_trajectory_reward_over_steps():
    targets = [TAP.model_dump(mode="json"), {"action": {"function": "Back"}}, {"action": {"function": "Home"}}]
    steps = [Step(index=0, action=Message.assistant(answer([{"bbox_2d": [105, 205, 295, 255]}], tap(210, 240)))),
             Step(index=1, action=Message.assistant(answer([], {"Action": {"function": "Home"}})))]
    traj = Trajectory(task_id="g", steps=steps)
    r = anyio.run(BTLReward().score, traj, Task(id="g", data={"gui_target": targets}))
    # step 0: 1.0; step 1: format 0.1 + blink 0.3 (no region) + link 0 = 0.4; step 2 never taken: 0
    assert r.per_step == pytest.approx([1.0, 0.4])
    assert r.total == pytest.approx(1.4 / 3)
    assert r.components["link"] == pytest.approx(1 / 3) and r.success is False
    with pytest.raises(ValueError, match=r"task.data\['gui_target'\] is missing"):
        anyio.run(BTLReward().score, traj, Task(id="g"))


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet="<>/blinkthk{}[]\":, 0123", max_size=60), st.lists(st.lists(st.integers(0, 400), min_size=4, max_size=4), max_size=3),
       st.integers(0, 400), st.integers(0, 400))
def test_property_total_in_range(noise, boxes, x, y):
    for text in (noise, answer([{"bbox_2d": b} for b in boxes], tap(x, y), think=noise)):
        s = btl_score(text, TAP)
        assert 0.0 <= s.total <= 1.0 + 1e-9
        assert s.total == pytest.approx(0.1 * s.format + 0.3 * s.blink + 0.6 * s.link)
