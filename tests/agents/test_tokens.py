"""build_token_views: segments from Generations alone."""

from __future__ import annotations

from traject.agents.tokens import build_token_views
from traject.types import Generation, Message


def _a(prompt: list[int], completion: list[int], logprobs: list[float] | None = None,
       version: int | None = None) -> Message:
    return Message.assistant("x", generation=Generation(prompt_ids=prompt, completion_ids=completion,
                                                        logprobs=logprobs, policy_version=version))


def test_no_assistant_or_missing_generation_gives_no_views() -> None:
    assert build_token_views([Message.user("hi")]) == []
    assert build_token_views([Message.user("hi"), _a([1], [2]), Message.assistant("no tokens")]) == []


def test_one_segment_with_observations() -> None:
    msgs = [Message.user("q"), _a([1, 2], [3, 4], [-0.1, -0.2], version=3), Message.tool("r", tool_call_id="c", name="t"),
            _a([1, 2, 3, 4, 5, 6], [7], [-0.3], version=4)]
    (v,) = build_token_views(msgs)
    assert v.ids == [1, 2, 3, 4, 5, 6, 7]
    assert v.mask == [0, 0, 1, 1, 0, 0, 1]
    assert v.logprobs == [0.0, 0.0, -0.1, -0.2, 0.0, 0.0, -0.3]
    assert v.turn == [-1, -1, 0, 0, -1, -1, 1]
    assert v.policy_versions == [3, 3, 3, 3, 4, 4, 4]
    assert v.prompt_len == 2


def test_prefix_break_starts_a_new_segment() -> None:
    msgs = [_a([1, 2], [3]), _a([1, 9, 3, 4], [5]), _a([1, 9, 3, 4, 5, 6], [7, 8])]
    first, second = build_token_views(msgs)
    assert (first.ids, first.mask, first.prompt_len) == ([1, 2, 3], [0, 0, 1], 2)
    assert (second.ids, second.mask, second.prompt_len) == ([1, 9, 3, 4, 5, 6, 7, 8], [0, 0, 0, 0, 1, 0, 1, 1], 4)
    assert second.turn == [-1, -1, -1, -1, 1, -1, 2, 2]


def test_shorter_prompt_is_a_break_and_equal_prompt_adds_nothing() -> None:
    # A prompt that is a strict prefix of the sequence so far drops tokens: a new segment.
    views = build_token_views([_a([1, 2], [3]), _a([1, 2], [4])])
    assert [v.ids for v in views] == [[1, 2, 3], [1, 2, 4]]
    # A prompt equal to the sequence so far (no observation between turns) extends it.
    (v,) = build_token_views([_a([1, 2], [3]), _a([1, 2, 3], [4])])
    assert v.ids == [1, 2, 3, 4] and v.mask == [0, 0, 1, 1]


def test_missing_logprobs_and_versions_default() -> None:
    (v,) = build_token_views([_a([1], [2, 3])])
    assert v.logprobs == [0.0, 0.0, 0.0] and v.policy_versions == [-1, -1, -1]


def test_empty_completion_and_empty_prompt() -> None:
    (v,) = build_token_views([_a([1, 2], []), _a([1, 2, 5], [6])])
    assert v.ids == [1, 2, 5, 6] and v.mask == [0, 0, 0, 1]
    views = build_token_views([_a([], [1]), _a([1, 2], [3])])
    assert [v.ids for v in views] == [[1, 2, 3]] and views[0].prompt_len == 0
