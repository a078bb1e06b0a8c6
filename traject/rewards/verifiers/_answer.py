"""Where verifiers read the agent's answer from."""

from __future__ import annotations

import re

from traject.types import Trajectory


def agent_answer(traj: Trajectory, pattern: str | None = None) -> str | None:
    """The trajectory's final answer (else the last assistant text), narrowed to the last
    match of ``pattern``'s first group when given and found."""
    text = traj.final_answer
    if text is None:
        text = next((m.text for m in reversed(traj.messages) if m.role == "assistant"), None)
    if text is None:
        return None
    if pattern:
        found = re.findall(pattern, text, re.DOTALL)
        if found:
            last = found[-1]
            text = last if isinstance(last, str) else last[0]
    return text
