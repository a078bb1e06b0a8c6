"""Majority-vote consensus: a GroupReward that needs no ground truth (TTRL, Zuo et al., 2025,
arXiv:2504.16084). Each sample scores 1 when its final answer is the answer most samples of
its group gave, 0 otherwise; a tie for the most votes gives every sample 0 (no consensus).

The final answer is ``Trajectory.final_answer`` when the env recorded one, else the ``answer``
argument of the last call to ``tool`` (e.g. ``submit``), else the last assistant text.
"""

from __future__ import annotations

import json
from collections import Counter

from traject.rewards.base import GroupReward
from traject.types import RewardResult, Task, Trajectory


class MajorityVote(GroupReward):
    name = "majority_vote"

    def __init__(self, tool: str = "submit", argument: str = "answer", *, name: str = "majority_vote") -> None:
        self.tool, self.argument, self.name = tool, argument, name

    def answer_of(self, traj: Trajectory) -> str | None:
        if traj.final_answer is not None:
            return traj.final_answer.strip()
        for msg in reversed(traj.messages):
            for call in reversed(msg.tool_calls or []):
                if call.name == self.tool and call.error is None and self.argument in (call.arguments or {}):
                    value = call.arguments[self.argument]
                    return value.strip() if isinstance(value, str) else json.dumps(value, sort_keys=True)
        text = next((m.text.strip() for m in reversed(traj.messages) if m.role == "assistant" and m.text), "")
        return text or None

    async def score_group(self, trajs: list[Trajectory], task: Task) -> list[RewardResult]:
        answers = [self.answer_of(t) for t in trajs]
        votes = Counter(a for a in answers if a is not None).most_common(2)
        majority = votes[0][0] if votes and (len(votes) == 1 or votes[0][1] > votes[1][1]) else None
        out = []
        for a in answers:
            agree = 1.0 if majority is not None and a == majority else 0.0
            out.append(RewardResult(total=agree, success=bool(agree), components={"agrees": agree}))
        return out
