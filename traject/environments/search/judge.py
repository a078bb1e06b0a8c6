"""An optional LLM judge of QA answers: is the agent's answer the gold answer, in other words?

Exact match misses "Marrowby village" for "Marrowby"; F1 pays for half-right answers. The judge
(the rewards library's ``LLMJudge``: structured answers, retries, cache) decides semantic
equivalence; exact match and F1 are still scored next to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from traject.rewards.base import Reward
from traject.rewards.verifiers._answer import agent_answer
from traject.rewards.verifiers.text import gold_answers
from traject.types import RewardResult, Task, Trajectory

if TYPE_CHECKING:
    from traject.rewards.judge import JudgeConfig, LLMJudge

PROMPT = """\
Decide whether a predicted answer to a question means the same as one of the gold answers. Ignore
wording, articles, case and extra detail that does not change the answer; a different entity, a
wrong number, or a hedge between several answers is not correct. Answer with JSON:
{{"reasoning": "<one sentence>", "correct": true or false}}

Question: {question}
Gold answers: {golds}
Predicted answer: {prediction}"""


class AnswerVerdict(BaseModel):
    model_config = ConfigDict(extra="ignore")

    reasoning: str = ""
    correct: bool


class AnswerJudge(Reward):
    name = "judge"

    def __init__(self, judge: LLMJudge | JudgeConfig) -> None:
        from traject.rewards.judge import JudgeConfig, LLMJudge

        self.judge = LLMJudge(judge) if isinstance(judge, JudgeConfig) else judge

    async def score(self, traj: Trajectory, task: Task) -> RewardResult:
        from traject.rewards.judge import JudgeError

        golds = gold_answers(task.answer)
        if not golds:
            return RewardResult(failed=True, error=f"task {task.id!r} has no answer to judge against")
        prediction = agent_answer(traj)
        if not prediction:
            return RewardResult(total=0.0, components={self.name: 0.0}, success=False, info={"prediction": None})
        question = str(task.data.get("question") or task.prompt)
        try:
            answer = await self.judge.ask(PROMPT.format(question=question, golds="; ".join(golds),
                                                        prediction=prediction), AnswerVerdict)
        except JudgeError as exc:
            return RewardResult(failed=True, error=f"the answer judge failed: {exc}")
        v = 1.0 if answer.value.correct else 0.0
        return RewardResult(total=v, components={self.name: v}, success=answer.value.correct,
                            info={"prediction": prediction, "reasoning": answer.value.reasoning})
