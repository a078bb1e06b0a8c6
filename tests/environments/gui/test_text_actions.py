from __future__ import annotations

import json

import pytest

from traject.environments.gui.actions import GuiActions
from traject.environments.gui.text_actions import TextActionError, parse_text_actions

PARAMS = {t.name: list(t.parameters["properties"]) for t in GuiActions().tools()}


def one(text: str):
    calls = parse_text_actions(text, PARAMS)
    assert len(calls) == 1
    return calls[0].name, calls[0].arguments


def test_positional_and_keyword_calls():
    assert one("click(12, 30)") == ("click", {"x": 12, "y": 30})
    assert one('type(text="hi there")') == ("type", {"text": "hi there"})
    assert one("scroll(0, 120)") == ("scroll", {"dx": 0, "dy": 120})
    assert one('`done("42")`') == ("done", {"answer": "42"})


def test_action_line_wins_over_calls_in_the_reasoning():
    text = "Maybe click(1, 1) would work.\nAction: click(50, 60)"
    assert one(text) == ("click", {"x": 50, "y": 60})
    calls = parse_text_actions('Action: click(5, 6); type("a;b"); key("Enter")', PARAMS)
    assert [(c.name, c.arguments) for c in calls] == [
        ("click", {"x": 5, "y": 6}), ("type", {"text": "a;b"}), ("key", {"name": "Enter"})]


def test_last_action_line_without_prefix():
    assert one("The button is at the top.\nclick(10, 20)") == ("click", {"x": 10, "y": 20})


def test_btl_link_with_json_entries():
    link = [{"Plan": "press it", "Action": {"function": "Tap", "point_2d": [11, 22]}}]
    text = f'<blink>[{{"bbox_2d": [0, 0, 30, 30]}}]</blink><think>ok</think><link>{json.dumps(link)}</link>'
    assert one(text) == ("click", {"x": 11, "y": 22})
    fenced = '<link>```json\n[{"point_2d": [3, 4]}]\n```</link>'
    assert one(fenced) == ("click", {"x": 3, "y": 4})
    scroll = '<link>[{"function": "scroll", "direction": "down", "point_2d": [5, 5]}]</link>'
    assert one(scroll) == ("scroll", {"x": 5, "y": 5, "dx": 0, "dy": 200})
    drag = '<link>[{"Action": {"function": "drag", "start_point_2d": [1, 2], "end_point_2d": [3, 4]}}]</link>'
    assert one(drag) == ("drag", {"x1": 1, "y1": 2, "x2": 3, "y2": 4})
    assert one('<link>click(7, 8)</link>') == ("click", {"x": 7, "y": 8})


def test_json_actions():
    assert one('{"action": "click", "coordinate": [1, 2]}') == ("click", {"x": 1, "y": 2})
    assert one('{"name": "type", "arguments": {"text": "x"}}') == ("type", {"text": "x"})


@pytest.mark.parametrize("text, message", [
    ("I am not sure what to do.", "no action found"),
    ("Action: fly(1, 2)", "no action named 'fly'"),
    ("Action: click(1, 2, 3)", "at most 2 arguments"),
    ("Action: click(x=y)", "must be literals"),
    ("Action: click(1,", "not a call"),
    ("<link></link>", "empty"),
    ("<link>[{\"Plan\": \"p\"}]</link>", "names no action"),
    ("<link>[1, 2]</link>", "must be a JSON object"),
    ('{"action": "click", "x": 1', "not valid JSON"),
])
def test_malformed_actions_say_what_is_wrong(text, message):
    with pytest.raises(TextActionError, match=message):
        parse_text_actions(text, PARAMS)
