"""What the checklist judge reads, and the strict JSON it answers with.

The layout follows the CM2 reference code (``get_messages_str_v2`` / ``get_input_prompt_v2``):
the earlier turns, then the current turn up to the judged step and the tool results after it,
each message rendered as ``# Turn: t`` / ``## Step: s`` headers with the assistant's thinking,
user-visible reply and tool calls apart; the answer has four analysis fields and a boolean.

Departures from the reference, on purpose:

* The thinking is ``Message.reasoning`` or a ``<think>...</think>`` block of the content; the
  reference, built for Qwen3 transcripts, takes a message without ``<think>`` as all thinking
  and no visible reply. Here such a message is all visible reply.
* A botched tool call is shown with its raw text and its error (the reference recovers
  ``<tool_call>`` text from the reply).
* The earlier turns are cut from the front to ``max_history_chars`` (the reference leaves a
  TODO there), marked with an explicit ``[... N earlier characters omitted ...]``.
* The instructions are reworded, and a template the config can replace.
"""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, ConfigDict

from traject.rewards.checklist.items import ChecklistItem
from traject.types import Message

_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


class ItemVerdict(BaseModel):
    """The judge's answer for one item at one step."""

    model_config = ConfigDict(extra="forbid")

    high_level_understanding_of_the_question: str
    analysis_of_if_focus_on: str
    analysis_of_pass_condition: str
    analysis_of_failure_examples: str
    answer: bool

    @property
    def rationale(self) -> str:
        return (f"Question: {self.high_level_understanding_of_the_question}\n"
                f"Focus: {self.analysis_of_if_focus_on}\n"
                f"Pass condition: {self.analysis_of_pass_condition}\n"
                f"Failure examples: {self.analysis_of_failure_examples}")


def split_thinking(message: Message) -> tuple[str, str]:
    """(thinking, user-visible reply) of an assistant message."""
    text = message.text
    thinking = message.reasoning or ""
    found = _THINK.search(text)
    if found:
        thinking = (thinking + "\n" + found.group(1)).strip() if thinking else found.group(1).strip()
        text = (text[: found.start()] + text[found.end():]).strip()
    return thinking.strip(), text.strip()


def _calls(message: Message) -> str:
    calls = []
    for c in message.tool_calls:
        if c.error is not None:
            calls.append({"name": c.name, "raw": c.raw, "error": c.error})
        else:
            calls.append({"name": c.name, "arguments": c.arguments})
    return json.dumps(calls, ensure_ascii=False) if calls else "None"


def render(messages: list[Message], *, first_turn: int = 0, first_step: int = 0) -> str:
    """Messages as the judge reads them. Turn numbers count from ``first_turn`` at the first
    user message; step numbers restart at each user message."""
    out: list[str] = []
    turn = first_turn - 1
    step = first_step
    for m in messages:
        if m.role == "system":
            out.append(f"Role: system\ncontent: {m.text}\n")
        elif m.role == "user":
            turn += 1
            step = 0
            out.append(f"# Turn: {turn}\nRole: user\ncontent: {m.text}\n")
        elif m.role == "assistant":
            thinking, reply = split_thinking(m)
            out.append(f"## Step: {step}\nRole: assistant\ncontent.thinking: {thinking or 'None'}\n"
                       f"content.user_visible_reply: {reply or 'None'}\ntool_call: {_calls(m)}\n")
            step += 1
        elif m.role == "tool":
            out.append(f"Role: tool\nname: {m.name or ''}\ncontent: {m.text}\n")
    return "".join(out)


def clip_front(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    cut = len(text) - limit
    return f"[... {cut} earlier characters omitted ...]\n" + text[cut:]


DEFAULT_TEMPLATE = """\
# Role
You check one criterion of a checklist against a conversation between a user, an assistant and \
tools. Judge strictly and only from what the messages show.

# Criterion
Question: {question}
Focus on: {focus_on}
Pass condition: {pass_condition}
Failure examples: {failure_examples}
Reference snippets: {snippets}

# Earlier turns
{history}
# Current turn, up to the step being judged
{current}
# Rules for tool calls
A tool call that appears only inside the thinking or the reply text, not under tool_call, was \
not made. If a tool result reports an error, the tool calls of the assistant step just before \
it are not valid.

# How to decide (one JSON field per point)
1. high_level_understanding_of_the_question: restate what is checked and what passing means.
2. analysis_of_if_focus_on: is the focused part present in the current turn?
3. analysis_of_pass_condition: is the pass condition fully met?
4. analysis_of_failure_examples: for each failure example, say "triggered" or "not triggered" and why.
5. answer: true only if the focused part is present, the pass condition is fully met and no \
failure example is triggered; otherwise false.

# Output
Only one JSON object with exactly the keys high_level_understanding_of_the_question, \
analysis_of_if_focus_on, analysis_of_pass_condition, analysis_of_failure_examples (strings) and \
answer (boolean).
"""


def build_prompt(item: ChecklistItem, history: str, current: str, template: str = DEFAULT_TEMPLATE) -> str:
    return template.format(
        question=item.question,
        focus_on=item.focus_on.value,
        pass_condition=item.pass_condition,
        failure_examples=json.dumps(item.failure_examples, ensure_ascii=False),
        snippets=json.dumps([e.snippet for e in item.evidence], ensure_ascii=False),
        history=history or "(none)\n",
        current=current,
    )
