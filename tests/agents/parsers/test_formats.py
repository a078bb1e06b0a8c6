"""Each format on the text real models write, and on the mistakes they make."""

from __future__ import annotations

import pytest

from traject.agents.parsers import (FORMATS, HermesFormat, Llama3JsonFormat, MistralFormat, OpenAIFormat,
                                    PythonicFormat, get_format)
from traject.types import ToolCall, ToolSchema


def _pairs(text: str, fmt) -> list[tuple[str, dict]]:
    return [(c.name, c.arguments) for c in fmt.parse(text).tool_calls]


def test_registry_lists_every_format() -> None:
    assert set(FORMATS) == {"hermes", "llama3_json", "mistral", "pythonic", "openai"}
    with pytest.raises(ValueError, match="unknown tool-call format 'nope'; known: hermes"):
        get_format("nope")


def test_hermes_argument_may_contain_the_closing_tag() -> None:
    f = HermesFormat()
    text = '<tool_call>\n{"name": "echo", "arguments": {"text": "a </tool_call> b"}}\n</tool_call>'
    assert _pairs(text, f) == [("echo", {"text": "a </tool_call> b"})]


def test_hermes_errors_name_the_problem_and_keep_going() -> None:
    f = HermesFormat()
    out = f.parse('Hi <tool_call>{"name": "a"</tool_call> and <tool_call>{"name": "b", "arguments": {}}</tool_call>')
    assert out.content == "Hi  and"
    assert out.tool_calls[0].error.startswith("the <tool_call> block is not valid JSON")
    assert out.tool_calls[0].raw == '<tool_call>{"name": "a"</tool_call>'
    assert (out.tool_calls[1].name, out.tool_calls[1].error) == ("b", None)
    assert f.parse('<tool_call>{"name": "a", "arguments": {}}').tool_calls[0].error == \
        "a <tool_call> block is not closed with </tool_call>"
    assert f.parse('<tool_call>{"name": "a", "arguments": [1]}</tool_call>').tool_calls[0].error == \
        "'arguments' must be a JSON object"
    assert f.parse('<tool_call>{"arguments": {}}</tool_call>').tool_calls[0].error == \
        "the tool call has no 'name' string"
    assert "NaN is not valid JSON" in f.parse('<tool_call>{"name": "a", "arguments": {"x": NaN}}</tool_call>').tool_calls[0].error


def test_llama3_forms() -> None:
    f = Llama3JsonFormat()
    assert _pairs('<|python_tag|>{"name": "a", "parameters": {"x": 1}}', f) == [("a", {"x": 1})]
    assert _pairs('{"name": "a", "parameters": {"x": 1}}; {"name": "b", "arguments": {}}', f) == \
        [("a", {"x": 1}), ("b", {})]
    assert f.parse('The answer is {"name": "a"}').tool_calls == []
    out = f.parse('{"name": "a", "parameters": {"x": 1}} trailing words')
    assert out.tool_calls[0].name == "a" and "separated by ';'" in out.tool_calls[1].error
    assert f.parse('{"name": "a", "parameters": {"x": ').tool_calls[0].error.startswith("the tool call is not valid JSON")
    assert f.parse("<|python_tag|>   ").tool_calls[0].error == "nothing follows <|python_tag|>"


def test_mistral_forms() -> None:
    f = MistralFormat()
    text = '[TOOL_CALLS][{"name": "a", "arguments": {"x": 1}, "id": "abcDEF123"}, {"name": "b", "arguments": {}}]'
    out = f.parse(text)
    assert [(c.name, c.arguments, c.error) for c in out.tool_calls] == [("a", {"x": 1}, None), ("b", {}, None)]
    assert out.tool_calls[0].id == "abcDEF123"
    assert _pairs('[TOOL_CALLS]{"name": "a", "arguments": {}}', f) == [("a", {})]
    out = f.parse('[TOOL_CALLS][{"name": "a", "arguments": {}}, {"arguments": {}}]')
    assert out.tool_calls[0].error is None and out.tool_calls[1].error == "the tool call has no 'name' string"
    assert f.parse("[TOOL_CALLS][]").tool_calls[0].error == "the [TOOL_CALLS] list is empty"
    assert f.parse("[TOOL_CALLS]lookup").tool_calls[0].raw == "[TOOL_CALLS]lookup"


def test_pythonic_forms() -> None:
    f = PythonicFormat()
    assert _pairs("[lookup(item='fig', n=(1, 2), opts={'a': None, 'b': True})]", f) == \
        [("lookup", {"item": "fig", "n": [1, 2], "opts": {"a": None, "b": True}})]
    assert _pairs("Let me check.\n[a(), b.c(**{'from': 1})]", f) == [("a", {}), ("b.c", {"from": 1})]
    assert f.parse("Let me check.\n[a()]").content == "Let me check."
    assert _pairs("<|python_start|>[a(x=1)]<|python_end|>", f) == [("a", {"x": 1})]
    errors = {t: f.parse(t).tool_calls[-1].error for t in
              ["[a(1)]", "[a(x=y)]", "[a(x=__import__('os'))]", "[a(x={1, 2})]", "[a(x=1e999)]",
               "[a(x=1, x=2)]", "[a(x=1), 3]", "[a(x=1", "[a(x=b'1')]"]}
    assert "positional" in errors["[a(1)]"]
    assert "literal value" in errors["[a(x=y)]"] and "literal value" in errors["[a(x=__import__('os'))]"]
    assert "set value" in errors["[a(x={1, 2})]"] and "finite" in errors["[a(x=1e999)]"]
    assert "not valid Python" in errors["[a(x=1"]
    assert "must be a call" in errors["[a(x=1), 3]"] and "bytes" in errors["[a(x=b'1')]"]
    assert "twice" in errors["[a(x=1, x=2)]"] or "not valid Python" in errors["[a(x=1, x=2)]"]
    assert f.parse("[1, 2, 3]").tool_calls == []  # a list that calls nothing is an answer


def test_openai_structured() -> None:
    f = OpenAIFormat()
    calls = [ToolCall(id="call_9", name="a", arguments={"x": [1, "y"]})]
    text = f.render_calls("thinking", calls)
    out = f.parse(text)
    assert out.content == "thinking" and out.tool_calls == calls
    assert f.parse(f.render_calls("", calls)).tool_calls == calls
    assert f.parse('{"tool_calls": [{"function": ').tool_calls[0].error.startswith("the tool_calls JSON is not valid")
    assert f.from_api([{"function": {"name": "a", "arguments": "[1]"}}])[0].error == "the arguments must be a JSON object"
    assert f.from_api([{"function": {"name": "a", "arguments": {"k": 1}}}])[0].arguments == {"k": 1}
    assert f.parse('{"answer": 3}').content == '{"answer": 3}'


def test_openai_from_sdk_objects() -> None:
    from openai.types.chat import ChatCompletionMessageToolCall

    sdk = ChatCompletionMessageToolCall(id="c1", type="function",
                                        function={"name": "lookup", "arguments": '{"item": "fig"}'})
    call = OpenAIFormat().from_api([sdk])[0]
    assert (call.id, call.name, call.arguments, call.error) == ("c1", "lookup", {"item": "fig"}, None)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_error_calls_render_back_to_errors(name: str) -> None:
    f = get_format(name)
    bad = {"hermes": '<tool_call>{"name": </tool_call>', "llama3_json": '<|python_tag|>{"name": ',
           "mistral": "[TOOL_CALLS][{", "pythonic": "[a(x=y)]", "openai": '{"tool_calls": [{"function": '}[name]
    parsed = f.parse(bad)
    assert parsed.format_errors == 1
    again = f.parse(f.render_calls(parsed.content, parsed.tool_calls))
    assert again.format_errors == 1


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_render_tools_names_every_tool(name: str) -> None:
    tools = [ToolSchema(name="lookup", description="Find a price."), ToolSchema(name="submit")]
    text = get_format(name).render_tools(tools)
    assert "lookup" in text and "submit" in text


@pytest.mark.parametrize("text", [
    "{'name': 'lookup', 'parameters': {'item': 'fig'}}",
    "<|python_tag|>{'name': 'lookup', 'parameters': {'item': 'fig'}}",
    "{\u201cname\u201d: \u201clookup\u201d, \u201cparameters\u201d: {\u201citem\u201d: \u201cfig\u201d}}",
    "  {\u2018name\u2019: \u2018lookup\u2019, \u2018parameters\u2019: {}}",
])
def test_llama3_wrongly_quoted_call_is_a_botched_call(text: str) -> None:
    out = Llama3JsonFormat().parse(text)
    assert out.content == "" and len(out.tool_calls) == 1, out
    call = out.tool_calls[0]
    assert call.error is not None and "straight double quotes" in call.error
    assert call.raw is not None and "lookup" in call.raw
    # A JSON answer with quotes inside its strings stays an answer.
    assert Llama3JsonFormat().parse('{"answer": "it\'s \u201cfig\u201d"}').tool_calls == []


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_lone_surrogates_become_replacement_characters(name: str) -> None:
    f = get_format(name)
    good = {"hermes": '<tool_call>{"name": "a\ud800", "arguments": {}}</tool_call>',
            "llama3_json": '<|python_tag|>{"name": "a\ud800", "parameters": {}}',
            "mistral": '[TOOL_CALLS][{"name": "a\ud800", "arguments": {}}]',
            "pythonic": "[a\ud800(x=1)]",
            "openai": '{"content": "hi", "tool_calls": [{"function": {"name": "a\ud800", "arguments": "{}"}}]}'}[name]
    for text in ("note \udfff here " + good, good + " \ud83d"):
        out = f.parse(text)
        dumped = out.model_dump_json()
        dumped.encode("utf-8")
        assert "\ufffd" in dumped
        for call in out.tool_calls:
            for field in (call.raw, call.name, call.error, call.id, out.content):
                assert field is None or "\ud800" not in field and "\udfff" not in field
    # A surrogate pair split into two code units is joined back, not replaced.
    assert get_format("hermes").parse("ok \ud83d\ude00").content == "ok \U0001f600"
