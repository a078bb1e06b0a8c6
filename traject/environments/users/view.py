"""What a simulated user sees of the conversation: the agent's words, never its thoughts or
its tool calls.

>>> strip_think("<think>she is upset</think>I am sorry to hear that.")
'I am sorry to hear that.'
>>> strip_think("reasoning only, no tag opened</think> Hello!")
'Hello!'
>>> strip_think("<think>never closed")
''
"""

from __future__ import annotations

import re

from traject.types import Message

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)


def strip_think(text: str) -> str:
    """Drop ``<think>…</think>`` blocks: the agent thinks, then says; the user hears only the saying."""
    out = _THINK_BLOCK.sub("", text)
    lowered = out.lower()
    # Templates that open the think block in the prompt leave only its closing tag in the text.
    if "</think>" in lowered:
        out = out[lowered.rindex("</think>") + len("</think>"):]
        lowered = out.lower()
    if "<think>" in lowered:  # opened and never closed: all of it is thought
        out = out[:lowered.index("<think>")]
    return out.strip()


def agent_says(message: Message) -> str:
    """The part of an assistant message a user hears."""
    return strip_think(message.text)


def new_agent_words(messages: list[Message]) -> list[str]:
    """The agent's visible words since the user last spoke (tool traffic left out)."""
    out: list[str] = []
    for m in reversed(messages):
        if m.role == "user":
            break
        if m.role == "assistant":
            said = agent_says(m)
            if said:
                out.append(said)
    return list(reversed(out))
