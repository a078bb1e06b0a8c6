"""RubricJudge: an LLM judge as a reward, with its rationale kept per turn.

The judge reads a rubric and the conversation and answers ``{"rationale": str, "score":
number}`` (strict JSON schema). With ``per_turn=True`` each user turn is judged on its own,
given the turns before it, and ``per_turn`` holds each turn's normalised score with the
rationales in ``info["turns"]``; the total is their mean. Otherwise the whole conversation is
judged once. Scores are mapped from ``[min_score, max_score]`` to [0, 1]; a score outside the
range, or an answer that does not parse, fails the reward (left out of the group, never 0).
"""

from __future__ import annotations

import anyio
from pydantic import BaseModel, ConfigDict, Field

from traject.rewards.base import Reward
from traject.rewards.checklist.conversation import segment
from traject.rewards.checklist.prompts import clip_front, render
from traject.rewards.judge import JudgeConfig, JudgeError, LLMJudge
from traject.types import RewardResult, Task, Trajectory


class JudgeScore(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rationale: str
    score: float


DEFAULT_RUBRIC_TEMPLATE = """\
# Role
You grade an assistant's work in a conversation, strictly by the rubric.

# Rubric
{rubric}

# Scale
Give a score from {min_score:g} (worst) to {max_score:g} (best).

# Earlier conversation
{history}
# What to grade
{current}
# Output
Only one JSON object: {{"rationale": "<why, citing the conversation>", "score": <number>}}
"""


class RubricJudgeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "rubric_judge"
    rubric: str = "Did the assistant resolve the user's request correctly, completely and honestly?"
    rubric_key: str | None = "rubric"     # a task's own rubric in task.data, when present
    min_score: float = 0.0
    max_score: float = 10.0
    per_turn: bool = False
    template: str = DEFAULT_RUBRIC_TEMPLATE
    max_history_chars: int | None = Field(default=40_000, ge=0)


class RubricJudge(Reward):
    def __init__(self, judge: LLMJudge | JudgeConfig, config: RubricJudgeConfig | None = None) -> None:
        self.judge = judge if isinstance(judge, LLMJudge) else LLMJudge(judge)
        self.config = config or RubricJudgeConfig()
        self.name = self.config.name

    def _rubric(self, task: Task) -> str:
        key = self.config.rubric_key
        if key and isinstance(task.data.get(key), str):
            return str(task.data[key])
        return self.config.rubric

    async def _grade(self, rubric: str, history: str, current: str) -> JudgeScore:
        c = self.config
        prompt = c.template.format(rubric=rubric, min_score=c.min_score, max_score=c.max_score,
                                   history=clip_front(history, c.max_history_chars) or "(none)\n", current=current)
        answer = await self.judge.ask(prompt, JudgeScore)
        if not c.min_score <= answer.value.score <= c.max_score:
            raise JudgeError(f"the judge's score {answer.value.score:g} is outside [{c.min_score:g}, {c.max_score:g}]")
        return answer.value

    def _normalise(self, score: float) -> float:
        c = self.config
        return (score - c.min_score) / (c.max_score - c.min_score)

    async def score(self, traj: Trajectory, task: Task) -> RewardResult:
        rubric = self._rubric(task)
        if not self.config.per_turn:
            try:
                graded = await self._grade(rubric, "", render(traj.messages))
            except JudgeError as exc:
                return RewardResult(failed=True, error=f"{self.name}: {exc}")
            v = self._normalise(graded.score)
            return RewardResult(total=v, components={self.name: v},
                                info={"rationale": graded.rationale, "score": graded.score})
        conv = segment(traj.messages)
        grades: list[JudgeScore | None] = [None] * conv.num_turns
        errors: list[JudgeError] = []

        async def one(t: int) -> None:
            end = conv.turn_starts[t + 1] if t + 1 < conv.num_turns else len(conv.messages)
            try:
                grades[t] = await self._grade(rubric, render(conv.before_turn(t)),
                                              render(conv.messages[conv.turn_starts[t]:end], first_turn=t))
            except JudgeError as exc:
                errors.append(exc)
                tg.cancel_scope.cancel()

        async with anyio.create_task_group() as tg:
            for t in range(conv.num_turns):
                tg.start_soon(one, t)
        if errors:
            return RewardResult(failed=True, error=f"{self.name}: {errors[0]}")
        per_turn = [self._normalise(g.score) for g in grades if g is not None]
        total = sum(per_turn) / len(per_turn) if per_turn else 0.0
        return RewardResult(total=total, components={self.name: total}, per_turn=per_turn,
                            info={"turns": [{"turn": t, "score": g.score, "rationale": g.rationale}
                                            for t, g in enumerate(grades) if g is not None]})
