"""Checks that a simulated user's answer is usable: not empty, in character, and not a dump of
its hidden instructions. A rejected answer is asked again; repeated rejection is an
infrastructure failure of the simulator, never the agent's.

>>> check = CharacterCheck(secret="You want to return order W1 because the mug arrived chipped "
...                               "and you want a refund to the original card")
>>> check("Hi, I'd like to return a mug that arrived chipped.") is None
True
>>> check("As an AI language model, I cannot do that.")
'the user simulator broke character (matched "as an ai")'
>>> check("")
'the user simulator answered with an empty message'
"""

from __future__ import annotations

import re
from collections.abc import Sequence

DEFAULT_BREAK_PATTERNS: tuple[str, ...] = (
    r"\bas an ai\b",
    r"\bi(?: am|'m) (?:an? )?(?:ai|artificial intelligence|language model|large language model|chatbot)\b",
    r"\bas a (?:large )?language model\b",
    r"^\s*(?:agent|assistant|customer service(?: agent)?|representative|npc)\s*:",
    r"\bmy (?:hidden )?instructions (?:are|say)\b",
)


class CharacterCheck:
    """``check(text) -> None`` when the text is usable, else a reason.

    ``secret``: the hidden instructions; an answer that copies ``leak_words`` consecutive
    words of them verbatim reveals them wholesale and is rejected.
    """

    def __init__(self, *, secret: str = "", patterns: Sequence[str] = DEFAULT_BREAK_PATTERNS,
                 leak_words: int = 12) -> None:
        self.patterns = [(p, re.compile(p, re.IGNORECASE | re.MULTILINE)) for p in patterns]
        self.leak_words = leak_words
        words = _words(secret)
        self._secret_windows = {" ".join(words[i:i + leak_words]) for i in range(len(words) - leak_words + 1)}

    def __call__(self, text: str) -> str | None:
        if not text.strip():
            return "the user simulator answered with an empty message"
        for source, pattern in self.patterns:
            if pattern.search(text):
                return f'the user simulator broke character (matched "{_pattern_label(source)}")'
        if self._secret_windows:
            words = _words(text)
            for i in range(len(words) - self.leak_words + 1):
                if " ".join(words[i:i + self.leak_words]) in self._secret_windows:
                    return "the user simulator revealed its hidden instructions verbatim"
        return None


def _words(text: str) -> list[str]:
    return re.findall(r"[\w#@.-]+", text.lower())


def _pattern_label(source: str) -> str:
    # A readable name for the built-in patterns in error messages ("as an ai" rather than a regex).
    m = re.fullmatch(r"\\b([a-z ]+)\\b", source)
    return m.group(1) if m else source
