"""ChecklistReward: CM2's checklist reward, and the end-of-turn check an env uses to stop early.

For each reference turn ``t`` and each assistant step ``s`` of that turn, every item of the
turn is judged on the earlier turns plus the current turn up to ``s`` (including the tool
results after ``s``). A tool-call error in those results marks the items focused on
``assistant.tool_calls`` or ``tool.content`` unsatisfied at that step, without a judge call.

* An item *counts* for its turn when it is satisfied at some step while every item it depends
  on already counts (at that step or an earlier one of the same turn).
* ``turn_reward[t] = sum(weight_i for i counting in turn t)`` (weights of a turn sum to 1).
* ``total = sum(turn_reward) / number of reference turns``: turns never reached score 0;
  conversation turns beyond the reference are not scored.
* ``per_turn`` always holds ``turn_reward`` for every reference turn. With
  ``level="turn"`` (for turn-level advantages) ``per_step`` also places
  ``turn_reward[t] / N`` at the last assistant step of each reached turn, as the CM2 reference
  places it at the turn's last token; ``sum(per_step) == total``.
* A judge answer that does not parse (after the judge's parse retries), or a judge endpoint
  that keeps failing, makes the result ``failed``: the trajectory is left out of its group,
  never scored 0.
* ``info["judgements"]``: every (turn, step, item) decision with the judge's rationale, for
  a per-turn view; ``info["turns"]``: per turn, which items counted.

Several checklists: CM2 annotates more than one checklist per task (``checklist_list``) and
averages their rewards; ``task.data["checklist"]`` may be a list of checklists (each a list of
turns, all with the same number of turns; ``max_checklists`` keeps the first k). Items with the
same content share judge calls through the cache.

Departure from the reference code: its turn-level score takes an item as satisfied when any
step satisfied it, ignoring ``dependence`` (dependence is only read by its step-level
advantage mode); here dependence is applied in both, as the issue and the paper state it.
The paper's step-level per-item advantages (with the ``eta`` decay) are not built here.

Early termination: an env calls :meth:`ChecklistReward.end_of_turn` when the assistant has
given its reply for a user turn. It judges that turn's ``required_for_next_turn`` items (and
what they depend on) and says whether the episode should end
(:attr:`TurnCheck.end_episode`, only when ``config.end_episode_on_required_failure``); with
several checklists, when more than half of them fail one. Those judge calls land in the
judge's cache, so scoring the finished trajectory reuses them. (In the CM2 reference rollout the
next user message is the reference conversation's next user turn, and the episode also ends
when the reference's turns are used up: that is the env's side.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import anyio
from pydantic import BaseModel, ConfigDict, Field

from traject.rewards.base import Reward
from traject.rewards.checklist.conversation import Conversation, StepView, from_trajectory, segment
from traject.rewards.checklist.items import Checklist, TurnChecklist
from traject.rewards.checklist.prompts import DEFAULT_TEMPLATE, ItemVerdict, build_prompt, clip_front, render
from traject.rewards.judge import JudgeConfig, JudgeError, LLMJudge
from traject.types import Message, RewardResult, Task, ToolResult, Trajectory


class ChecklistConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "checklist"
    checklist_key: str = "checklist"
    level: Literal["trajectory", "turn"] = "trajectory"
    # None: any error tool result is a tool-call error; else only these ToolResult.error_kind values.
    tool_error_kinds: list[str] | None = None
    max_history_chars: int | None = Field(default=40_000, ge=0)
    prompt_template: str = DEFAULT_TEMPLATE
    # The flag the env reads: end the episode when a required item fails at the end of its turn.
    end_episode_on_required_failure: bool = True
    # What end_of_turn judges: the required items (and their dependencies), or every item.
    end_of_turn_items: Literal["required", "all"] = "required"
    success_threshold: float = 1.0
    # CM2 annotates several checklists per task (its ``checklist_list``) and averages them; use
    # at most this many (None: all).
    max_checklists: int | None = Field(default=None, ge=1)


@dataclass(frozen=True)
class Judgement:
    turn: int
    step: int
    item: str
    satisfied: bool
    source: Literal["judge", "cache", "tool_error"]
    rationale: str
    checklist: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"checklist": self.checklist, "turn": self.turn, "step": self.step, "item": self.item,
                "satisfied": self.satisfied, "source": self.source, "rationale": self.rationale}


class TurnScore(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checklist: int = 0
    turn: int
    reward: float
    counted: dict[str, int]          # item id -> step at which it counted
    unmet: list[str]


class TurnCheck(BaseModel):
    """The env's answer at the end of a user turn."""

    model_config = ConfigDict(extra="forbid")

    turn: int
    passed: bool                      # every required item counted (in a majority of the checklists)
    failed_required: list[str]        # ids; "id#k" for checklist k when the task has several
    end_episode: bool
    reward: float                     # the turn's reward over the items judged (mean over checklists)
    judgements: list[dict[str, Any]] = Field(default_factory=list)


def count_items(turn: TurnChecklist, per_step: list[dict[str, bool]], only: set[str] | None = None) -> dict[str, int]:
    """Item id -> the step at which it first counts (satisfied with its dependencies counted)."""
    counted: dict[str, int] = {}
    items = [i for i in turn.items if only is None or i.id in only]
    for s, results in enumerate(per_step):
        changed = True
        while changed:  # within a step, a chain of dependencies can complete at once
            changed = False
            for item in items:
                if item.id in counted or not results.get(item.id, False):
                    continue
                if all(d in counted for d in item.dependence):
                    counted[item.id] = s
                    changed = True
    return counted


class ChecklistReward(Reward):
    """CM2's checklist reward; ``judge`` is an LLMJudge (shared for its cache) or its config."""

    def __init__(self, judge: LLMJudge | JudgeConfig, config: ChecklistConfig | None = None) -> None:
        self.judge = judge if isinstance(judge, LLMJudge) else LLMJudge(judge)
        self.config = config or ChecklistConfig()
        self.name = self.config.name

    def checklists(self, task: Task) -> list[Checklist]:
        """The task's checklist(s): one checklist (a list of turns), or several (a list of such
        lists), all with the same number of turns."""
        key = self.config.checklist_key
        raw = task.data.get(key)
        if isinstance(raw, list) and raw and all(isinstance(c, list) for c in raw):
            found = [Checklist.from_task_data({key: c}, key, source=f"task {task.id!r} (checklist {k})")
                     for k, c in enumerate(raw)]
        else:
            found = [Checklist.from_task_data(task.data, key, source=f"task {task.id!r}")]
        if self.config.max_checklists is not None:
            found = found[: self.config.max_checklists]
        turns = {c.num_turns for c in found}
        if len(turns) > 1:
            raise ValueError(f"task {task.id!r}: its checklists cover different numbers of turns "
                             f"({[c.num_turns for c in found]}); each must have one entry per reference turn")
        return found

    def checklist(self, task: Task) -> Checklist:
        return self.checklists(task)[0]

    # -- judging -------------------------------------------------------------------------

    async def _judge_turn(self, conv: Conversation, turn_idx: int, turn: TurnChecklist,
                          item_ids: set[str] | None = None, *,
                          index: int = 0) -> tuple[list[dict[str, bool]], list[Judgement]]:
        steps = conv.steps_of(turn_idx)
        items = [i for i in turn.items if item_ids is None or i.id in item_ids]
        results: list[dict[str, bool]] = [{} for _ in steps]
        judgements: list[Judgement] = []
        history = clip_front(render(conv.before_turn(turn_idx)), self.config.max_history_chars)

        errors: list[JudgeError] = []

        async def one(k: int, sv: StepView, item_id: str, prompt: str) -> None:
            try:
                answer = await self.judge.ask(prompt, ItemVerdict)
            except JudgeError as exc:
                errors.append(exc)
                tg.cancel_scope.cancel()  # one unusable answer fails the whole reward
                return
            results[k][item_id] = answer.value.answer
            judgements.append(Judgement(turn_idx, sv.step, item_id, answer.value.answer,
                                        "cache" if answer.cached else "judge", answer.value.rationale, index))

        async with anyio.create_task_group() as tg:
            for k, sv in enumerate(steps):
                current = render(conv.turn_until(sv), first_turn=turn_idx)
                for item in items:
                    if sv.tool_error and item.focus_on.about_tools:
                        results[k][item.id] = False
                        judgements.append(Judgement(turn_idx, sv.step, item.id, False, "tool_error",
                                                    "a tool call of this step failed", index))
                        continue
                    prompt = build_prompt(item, history, current, self.config.prompt_template)
                    tg.start_soon(one, k, sv, item.id, prompt)
        if errors:
            raise errors[0]
        judgements.sort(key=lambda j: (j.turn, j.step, j.item))
        return results, judgements

    async def score_turns(self, conv: Conversation, checklist: Checklist, *,
                          index: int = 0) -> tuple[list[TurnScore], list[Judgement]]:
        reached = min(conv.num_turns, checklist.num_turns)
        scores: list[TurnScore | None] = [None] * reached
        all_judgements: list[Judgement] = []

        errors: list[JudgeError] = []

        async def turn_job(t: int) -> None:
            turn = checklist.turns[t]
            try:
                per_step, judgements = await self._judge_turn(conv, t, turn, index=index)
            except JudgeError as exc:
                errors.append(exc)
                tg.cancel_scope.cancel()
                return
            counted = count_items(turn, per_step)
            reward = sum(i.weight for i in turn.items if i.id in counted)
            scores[t] = TurnScore(checklist=index, turn=t, reward=reward, counted=counted,
                                  unmet=[i.id for i in turn.items if i.id not in counted])
            all_judgements.extend(judgements)

        async with anyio.create_task_group() as tg:
            for t in range(reached):
                tg.start_soon(turn_job, t)
        if errors:
            raise errors[0]
        all_judgements.sort(key=lambda j: (j.turn, j.step, j.item))
        return [s for s in scores if s is not None], all_judgements

    # -- the Reward ----------------------------------------------------------------------

    async def score(self, traj: Trajectory, task: Task) -> RewardResult:
        try:
            checklists = self.checklists(task)
        except ValueError as exc:
            return RewardResult(failed=True, error=str(exc))
        conv = from_trajectory(traj, self.config.tool_error_kinds)
        outcomes: list[tuple[list[TurnScore], list[Judgement]] | None] = [None] * len(checklists)
        errors: list[JudgeError] = []

        async def one(k: int) -> None:
            try:
                outcomes[k] = await self.score_turns(conv, checklists[k], index=k)
            except JudgeError as exc:
                errors.append(exc)
                tg.cancel_scope.cancel()

        async with anyio.create_task_group() as tg:
            for k in range(len(checklists)):
                tg.start_soon(one, k)
        if errors:
            return RewardResult(failed=True, error=f"checklist judge: {errors[0]}",
                                info={"judge_raw": getattr(errors[0], "raw", None)})
        n, m = checklists[0].num_turns, len(checklists)
        step_of = _policy_step_numbers(traj)
        per_turn = [0.0] * n
        per_step = [0.0] * len(traj.steps) if self.config.level == "turn" else []
        turn_scores: list[TurnScore] = []
        judgements: list[Judgement] = []
        for outcome in outcomes:
            assert outcome is not None
            scores, judged = outcome
            turn_scores.extend(scores)
            judgements.extend(judged)
            for ts in scores:
                per_turn[ts.turn] += ts.reward / m
                steps = conv.steps_of(ts.turn)
                if per_step and steps and steps[-1].index in step_of:
                    per_step[step_of[steps[-1].index]] += ts.reward / (n * m)
        total = sum(per_turn) / n
        reached = min(conv.num_turns, n)
        return RewardResult(
            total=total,
            components={self.name: total, "turns_reached": float(reached), "reference_turns": float(n),
                        "checklists": float(m), "judge_calls": float(sum(j.source == "judge" for j in judgements))},
            per_turn=per_turn,
            per_step=per_step,
            success=total >= self.config.success_threshold - 1e-9,
            info={"level": self.config.level,
                  "turns": [ts.model_dump() for ts in turn_scores],
                  "judgements": [j.to_json() for j in judgements]},
        )

    # -- early termination ---------------------------------------------------------------

    async def end_of_turn(self, task: Task, messages: list[Message],
                          tool_results: list[ToolResult] | None = None, *, turn: int | None = None) -> TurnCheck:
        """Judge the required items of the turn that just ended (the last user turn in
        ``messages``, or ``turn``). ``tool_results`` are the episode's ToolResults so far, so
        that tool-call errors are seen. With several checklists the turn fails when more than
        half of them fail a required item (as the CM2 reference decides). Raises JudgeError
        when the judge fails."""
        checklists = self.checklists(task)
        conv = segment(messages, tool_results or (), self.config.tool_error_kinds)
        t = conv.num_turns - 1 if turn is None else turn
        if t < 0 or t >= checklists[0].num_turns:
            return TurnCheck(turn=t, passed=True, failed_required=[], end_episode=False, reward=0.0)
        m = len(checklists)
        failing = 0
        failed_ids: list[str] = []
        reward = 0.0
        all_judgements: list[Judgement] = []
        for k, checklist in enumerate(checklists):
            ref = checklist.turns[t]
            required = {i.id for i in ref.items if i.required_for_next_turn}
            judged = None if self.config.end_of_turn_items == "all" else ref.with_dependencies(required)
            if judged is not None and not judged:
                continue
            per_step, judgements = await self._judge_turn(conv, t, ref, judged, index=k)
            counted = count_items(ref, per_step, judged)
            failed = sorted(required - set(counted))
            failing += bool(failed)
            failed_ids.extend(failed if m == 1 else [f"{i}#{k}" for i in failed])
            reward += sum(i.weight for i in ref.items if i.id in counted) / m
            all_judgements.extend(judgements)
        passed = failing <= m / 2 if m > 1 else failing == 0
        return TurnCheck(
            turn=t, passed=passed, failed_required=failed_ids,
            end_episode=not passed and self.config.end_episode_on_required_failure,
            reward=reward, judgements=[j.to_json() for j in all_judgements],
        )


def _policy_step_numbers(traj: Trajectory) -> dict[int, int]:
    """Message index of each policy step's assistant message -> the step's number. The
    task's prompt may hold earlier assistant messages; they are no policy step."""
    index = len(traj.messages) - sum(1 + len(s.observations) for s in traj.steps)
    out: dict[int, int] = {}
    for k, step in enumerate(traj.steps):
        out[index] = k
        index += 1 + len(step.observations)
    return out
