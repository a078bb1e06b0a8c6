"""Property tests of every tool-call format: parse never raises, and render/parse round-trip."""

from __future__ import annotations

import json
import keyword

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from traject.agents.parsers import FORMATS, get_format
from traject.agents.parsers.base import ParsedOutput
from traject.types import ToolCall

FORMAT_NAMES = sorted(FORMATS)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,11}", fullmatch=True).filter(
    lambda s: not keyword.iskeyword(s))
json_scalars = (st.none() | st.booleans() | st.integers(-10**12, 10**12)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
# Argument names: mostly identifiers, sometimes anything (pythonic renders those through **{...}).
arg_names = identifiers | st.text(min_size=1, max_size=8)
calls = st.builds(lambda name, args: ToolCall(name=name, arguments=args),
                  identifiers, st.dictionaries(arg_names, json_values, max_size=4))
# Prose that carries no format markers (no brackets, braces or tags) and no edge whitespace.
contents = st.text(alphabet=st.characters(blacklist_characters="[]{}<>|()\"'\\",
                                          blacklist_categories=("Cs", "Cc")), max_size=60).map(str.strip)


def _canon(call: ToolCall) -> tuple[str, str]:
    return call.name, json.dumps(call.arguments, sort_keys=True, ensure_ascii=False)


def _check_wellformed(out: ParsedOutput) -> None:
    assert isinstance(out, ParsedOutput)
    assert isinstance(out.content, str)
    for call in out.tool_calls:
        if call.error is not None:
            assert call.error and call.raw is not None, call
        else:
            assert call.name and isinstance(call.arguments, dict), call
            # A parsed call must be storable as a trajectory line.
            json.dumps(call.arguments, allow_nan=False, ensure_ascii=False).encode("utf-8")
            call.model_dump_json()


@pytest.mark.parametrize("fmt_name", FORMAT_NAMES)
@SETTINGS
@given(content=contents, call_list=st.lists(calls, min_size=1, max_size=3))
def test_round_trip(fmt_name: str, content: str, call_list: list[ToolCall]) -> None:
    fmt = get_format(fmt_name)
    text = fmt.render_calls(content, call_list)
    out = fmt.parse(text)
    assert [c.error for c in out.tool_calls] == [None] * len(call_list), (text, out)
    assert [_canon(c) for c in out.tool_calls] == [_canon(c) for c in call_list], text
    assert out.content == content, text


@pytest.mark.parametrize("fmt_name", FORMAT_NAMES)
@SETTINGS
@given(content=contents)
def test_plain_text_is_content(fmt_name: str, content: str) -> None:
    out = get_format(fmt_name).parse(content)
    assert out.tool_calls == [] and out.content == content


@pytest.mark.parametrize("fmt_name", FORMAT_NAMES)
@SETTINGS
@given(text=st.text(max_size=300))
def test_arbitrary_text_never_raises(fmt_name: str, text: str) -> None:
    _check_wellformed(get_format(fmt_name).parse(text))


MARKERS = ["<tool_call>", "</tool_call>", "<|python_tag|>", "[TOOL_CALLS]", "<|python_start|>",
           "<|python_end|>", "{", "}", "[", "]", "(", ")", '"', ",", ":", ";", "=", "\\", "\n", "NaN",
           '"name"', '"arguments"', '"tool_calls"', "1e999", "**", "lambda: 0"]


@st.composite
def corrupted(draw: st.DrawFn, fmt_name: str) -> str:
    """Text from valid calls, broken in a few random places."""
    fmt = get_format(fmt_name)
    text = fmt.render_calls(draw(contents), draw(st.lists(calls, min_size=1, max_size=3)))
    for _ in range(draw(st.integers(1, 4))):
        if not text:
            break
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 12)))
        op = draw(st.sampled_from(["delete", "insert", "truncate", "duplicate", "marker"]))
        if op == "delete":
            text = text[:i] + text[j:]
        elif op == "insert":
            text = text[:i] + draw(st.text(max_size=4)) + text[i:]
        elif op == "truncate":
            text = text[:i]
        elif op == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        else:
            text = text[:i] + draw(st.sampled_from(MARKERS)) + text[i:]
    return text


@pytest.mark.parametrize("fmt_name", FORMAT_NAMES)
@SETTINGS
@given(data=st.data())
def test_near_misses_never_raise(fmt_name: str, data: st.DataObject) -> None:
    text = data.draw(corrupted(fmt_name))
    _check_wellformed(get_format(fmt_name).parse(text))


@pytest.mark.parametrize("fmt_name", FORMAT_NAMES)
def test_adversarial_inputs(fmt_name: str) -> None:
    fmt = get_format(fmt_name)
    for text in ["<tool_call>" + "[" * 5000, "[TOOL_CALLS]" + "[" * 5000, "<|python_tag|>" + "{" * 5000,
                 "[f(a=" + "[" * 5000 + "])]", "[f(a=" + "9" * 6000 + ")]", '{"tool_calls": ' + "[" * 5000,
                 '<tool_call>{"name": "x", "arguments": {"a": "\\ud800"}}</tool_call>',
                 '[TOOL_CALLS][{"name": "x", "arguments": {"a": NaN}}]', "\x00[f(a=1)]"]:
        _check_wellformed(fmt.parse(text))
