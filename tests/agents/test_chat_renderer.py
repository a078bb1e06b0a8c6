"""ChatRenderer: prompts that reuse sampled tokens exactly, deltas for new messages, fresh
renders (and so new segments) where a template rewrites history."""

from __future__ import annotations

from pathlib import Path

import pytest

from traject.agents.chat_renderer import ChatRenderer
from traject.agents.parsers import PythonicFormat
from traject.agents.tokens import build_token_views
from traject.environments.builtin.lookup import lookup, submit
from traject.types import Generation, Message, ToolCall

TOOLS = [lookup.schema, submit.schema]
EOT = "<|im_end|>"


@pytest.fixture(scope="module")
def tokenizer(tiny_path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_path)


@pytest.fixture(scope="module")
def qwen3_tokenizer(tiny_qwen3_path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_qwen3_path)


def _canonical_turn(r: ChatRenderer, messages: list[Message], reply: Message) -> str:
    opening = r.render_text(messages, TOOLS, add_generation_prompt=True)
    closed = r.render_text([*messages, reply], TOOLS, add_generation_prompt=False)
    turn = closed[len(opening):]
    return turn[: turn.rfind(EOT) + len(EOT)]


def _sampled(r: ChatRenderer, messages: list[Message], reply: Message, completion: list[int] | None = None,
             finish: str = "stop") -> Message:
    """``reply`` as if sampled: by default its canonical tokens; ``completion`` overrides them."""
    prompt = r.render_prompt(messages, TOOLS)
    ids = completion if completion is not None else r.encode(_canonical_turn(r, messages, reply))
    return reply.model_copy(update={"generation": Generation(prompt_ids=prompt.ids, completion_ids=ids,
                                                             finish_reason=finish)})


def _conversation(r: ChatRenderer) -> list[Message]:
    msgs = [Message.system("You are terse."), Message.user("How much do 2 fig cost?")]
    a1 = _sampled(r, msgs, Message.assistant("", tool_calls=[ToolCall(name="lookup", arguments={"item": "fig"})]))
    msgs += [a1, Message.tool("4", tool_call_id=a1.tool_calls[0].id, name="lookup")]
    a2 = _sampled(r, msgs, Message.assistant("So 8.", tool_calls=[ToolCall(name="submit", arguments={"answer": 8})]))
    return [*msgs, a2, Message.tool("Submitted.", tool_call_id=a2.tool_calls[0].id, name="submit"),
            Message.user("And 3 fig?")]


def test_first_prompt_is_the_template_tokenised(tokenizer) -> None:
    r = ChatRenderer(tokenizer)
    msgs = [Message.system("S"), Message.user("Q")]
    p = r.render_prompt(msgs, TOOLS)
    assert p.ids == r.encode(p.text) and p.reused == 0 and p.fresh_reason is None
    assert p.text.endswith("<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n")


def test_canonical_samples_give_the_same_ids_as_a_fresh_render(tokenizer) -> None:
    r = ChatRenderer(tokenizer)
    msgs = _conversation(r)
    p = r.render_prompt(msgs, TOOLS)
    assert p.fresh_reason is None and p.reused == len(msgs[4].generation.prompt_ids) + len(msgs[4].generation.completion_ids)
    assert p.ids == r.encode(p.text)


def test_sampled_tokens_are_reused_as_sampled(tokenizer) -> None:
    r = ChatRenderer(tokenizer)
    msgs = [Message.user("How much do 2 fig cost?")]
    reply = Message.assistant("", tool_calls=[ToolCall(name="lookup", arguments={"item": "fig"})])
    text = _canonical_turn(r, msgs, reply)
    # A non-canonical tokenisation of the same text: one token per character (the end token whole).
    odd = [i for ch in text[: -len(EOT)] for i in r.encode(ch)] + [r.end_of_turn_id]
    assert odd != r.encode(text)
    a1 = _sampled(r, msgs, reply, completion=odd)
    msgs += [a1, Message.tool("4", tool_call_id=a1.tool_calls[0].id, name="lookup")]
    p = r.render_prompt(msgs, TOOLS)
    g = a1.generation
    assert p.ids[: p.reused] == g.prompt_ids + g.completion_ids
    assert tokenizer.decode(p.ids) == p.text  # same text, other ids
    assert p.ids != r.encode(p.text)
    assert tokenizer.decode(p.ids[p.reused:]).startswith("\n<|im_start|>user\n<tool_response>\n4\n</tool_response>")


def test_truncated_completion_gets_the_end_of_turn(tokenizer) -> None:
    r = ChatRenderer(tokenizer)
    msgs = [Message.user("Hi")]
    cut = r.encode("Hel")
    a1 = _sampled(r, msgs, Message.assistant("Hel"), completion=cut, finish="length")
    p = r.render_prompt([*msgs, a1, Message.user("Go on")], TOOLS)
    assert p.fresh_reason is None
    assert tokenizer.decode(p.ids[p.reused:]) == "<|im_end|>\n<|im_start|>user\nGo on<|im_end|>\n<|im_start|>assistant\n"


def test_error_calls_are_rendered_as_written(tokenizer) -> None:
    r = ChatRenderer(tokenizer)
    bad = ToolCall(name="", raw="<tool_call>{oops</tool_call>", error="not JSON")
    msgs = [Message.user("q"), Message.assistant("hm", tool_calls=[bad]),
            Message.tool("Error: not JSON", tool_call_id=bad.id, name="")]
    text = r.render_text(msgs, TOOLS, add_generation_prompt=True)
    assert "<|im_start|>assistant\nhm\n<tool_call>{oops</tool_call><|im_end|>" in text


def test_reasoning_dropping_template_forces_a_fresh_render(qwen3_tokenizer) -> None:
    r = ChatRenderer(qwen3_tokenizer)
    msgs = [Message.user("Q1")]
    a1 = _sampled(r, msgs, Message.assistant("A1", reasoning="think one"))
    assert qwen3_tokenizer.decode(a1.generation.completion_ids) == "think one\n</think>\n\nA1<|im_end|>"
    msgs.append(a1)
    # A tool result keeps the reasoning (it follows the last user turn): the delta extends.
    with_tool = r.render_prompt([*msgs, Message.tool("r", tool_call_id="c", name="lookup")], TOOLS)
    assert with_tool.fresh_reason is None and with_tool.reused > 0
    # A new user turn drops it: the template rewrote history.
    msgs.append(Message.user("Q2"))
    p = r.render_prompt(msgs, TOOLS)
    assert p.reused == 0 and p.fresh_reason == "the chat template rewrote earlier turns when new messages were added"
    assert p.ids == r.encode(p.text) and "think one" not in p.text
    a2 = _sampled(r, msgs, Message.assistant("A2", reasoning="think two"))
    views = build_token_views([*msgs, a2])
    assert len(views) == 2
    assert views[1].ids[: len(a2.generation.prompt_ids)] == a2.generation.prompt_ids


def test_template_that_never_shows_reasoning_is_detected(tokenizer) -> None:
    # Like DeepSeek-R1's: history shows only the answer.
    no_think = tokenizer.chat_template.replace(
        "{%- if message.reasoning_content %}{{- '<think>\\n' + message.reasoning_content.strip('\\n') + "
        "'\\n</think>\\n\\n' }}{%- endif %}", "")
    assert no_think != tokenizer.chat_template
    r = ChatRenderer(tokenizer, chat_template=no_think)
    msgs = [Message.user("Q")]
    prompt = r.render_prompt(msgs, TOOLS)
    a1 = Message.assistant("A", reasoning="secret", generation=Generation(
        prompt_ids=prompt.ids, completion_ids=r.encode("<think>\nsecret\n</think>\n\nA<|im_end|>")))
    p = r.render_prompt([*msgs, a1, Message.tool("r", tool_call_id="c", name="lookup")], TOOLS)
    assert p.fresh_reason == "the chat template drops the assistant's reasoning from history"


def test_assistant_without_tokens_means_a_fresh_render(tokenizer) -> None:
    r = ChatRenderer(tokenizer)
    msgs = _conversation(r)[:4] + [Message.assistant("typed by hand"), Message.user("ok")]
    p = r.render_prompt(msgs, TOOLS)
    assert p.reused == 0 and p.ids == r.encode(p.text) and p.fresh_reason is None


def test_supervised_views_mask_exactly_the_assistant_turns(tokenizer) -> None:
    r = ChatRenderer(tokenizer)
    msgs = [*_conversation(r), Message.assistant("24, at 8 each... no, 12.")]
    msgs = [m.model_copy(update={"generation": None}) for m in msgs]
    (v,) = r.render_supervised(msgs, TOOLS)
    full = r.render_text(msgs, TOOLS, add_generation_prompt=False)
    assert tokenizer.decode(v.ids) == full[: full.rfind(EOT) + len(EOT)]
    turns = [[i for i, t in zip(v.ids, v.turn) if t == k] for k in range(3)]
    assert [tokenizer.decode(t) for t in turns] == [
        _canonical_turn(r, msgs[:i], msgs[i]) for i in (2, 4, 7)]
    assert all(m == (t >= 0) for m, t in zip(v.mask, v.turn))
    # The context between turns is what render_prompt would have built from these turns.
    sampled = list(msgs)
    for i in (2, 4, 7):
        sampled[i] = _sampled(r, sampled[:i], sampled[i])
    assert build_token_views(sampled)[0].ids == v.ids


def test_supervised_views_split_where_the_template_rewrites(qwen3_tokenizer) -> None:
    r = ChatRenderer(qwen3_tokenizer)
    msgs = [Message.user("Q1"), Message.assistant("A1", reasoning="r1"), Message.user("Q2"),
            Message.assistant("A2", reasoning="r2")]
    first, second = r.render_supervised(msgs, TOOLS)
    assert qwen3_tokenizer.decode([i for i, m in zip(first.ids, first.mask) if m]) == "r1\n</think>\n\nA1<|im_end|>"
    assert "r1" not in qwen3_tokenizer.decode(second.ids)


def test_text_tool_format_mode(tokenizer) -> None:
    r = ChatRenderer(tokenizer, tool_format=PythonicFormat())
    call = ToolCall(name="lookup", arguments={"item": "fig"})
    msgs = [Message.system("S"), Message.user("Q"), Message.assistant("", tool_calls=[call]),
            Message.tool("4", tool_call_id=call.id, name="lookup")]
    text = r.render_text(msgs, TOOLS, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nS\n\nYou can call functions.")
    assert "# Tools" not in text  # the template's own tool listing is not used
    assert "<|im_start|>assistant\n[lookup(item='fig')]<|im_end|>" in text
    assert "<|im_start|>user\n<tool_response>\n4\n</tool_response><|im_end|>" in text


def test_bad_configuration_is_a_clear_error(tokenizer) -> None:
    with pytest.raises(ValueError, match="not a single token"):
        ChatRenderer(tokenizer, end_of_turn="<|nope|>")
    with pytest.raises(ValueError, match="no chat template"):
        ChatRenderer(type("T", (), {"eos_token": "x", "chat_template": None,
                                    "convert_tokens_to_ids": staticmethod(lambda t: 1)})())
