"""SWE rewards: the outcome levels of an episode, step rewards, and G-RA over them.

The env records, in the last step's ``info["swe"]``, whether the agent submitted, whether the
repository differed from ``base_commit`` at the end, and the patch; and in ``info["test_run"]``
the parsed test run (tests of ``test_patch`` run against the agent's repository). Each step's
``info["swe"]`` also says whether that step edited the repository and whether it ran tests.

Outcome levels, ordered: ``no_submit < empty_patch < patch_fails < resolved`` (resolved: every
FAIL_TO_PASS and PASS_TO_PASS test passes, judged by the rewards layer's UnitTestReward).
Their values are configurable; the defaults (-1, -0.5, 0, 1) keep the order and give a
resolved patch the only positive outcome.

G-RA (:func:`swe_reward`): step rewards (valid tool calls, files edited, tests run) are added
only when the outcome reaches ``gate`` (default ``patch_fails``: a non-empty patch was
submitted). Their sum is capped at half the smallest gap between the outcome values at or above
the gate, so no amount of step reward lifts an outcome to the next level's score: a failing
patch can never score what a resolved one does. The result carries the gated and the ungated
totals.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from traject.rewards.base import Reward
from traject.rewards.gated import GatedAccumulation, GateLevel
from traject.rewards.verifiers.unit_tests import UnitTestReward, recorded_run
from traject.types import RewardResult, Step, Task, Trajectory

OutcomeLevel = Literal["no_submit", "empty_patch", "patch_fails", "resolved"]
OUTCOME_LEVELS: tuple[OutcomeLevel, ...] = ("no_submit", "empty_patch", "patch_fails", "resolved")
DEFAULT_OUTCOME_VALUES: dict[str, float] = {"no_submit": -1.0, "empty_patch": -0.5, "patch_fails": 0.0,
                                            "resolved": 1.0}


def swe_info(traj: Trajectory) -> dict[str, Any]:
    """The env's end-of-episode record (the last step with ``info["swe"]["final"]``)."""
    for step in reversed(traj.steps):
        swe = step.info.get("swe")
        if isinstance(swe, dict) and swe.get("final"):
            return swe
    return {}


async def resolution(traj: Trajectory, task: Task) -> RewardResult | None:
    """UnitTestReward's verdict on the recorded test run (None when no tests were run)."""
    if recorded_run(traj) is None:
        return None
    return await UnitTestReward().score(traj, task)


async def outcome_level(traj: Trajectory, task: Task) -> tuple[OutcomeLevel, RewardResult | None]:
    info = swe_info(traj)
    if not info.get("submitted"):
        return "no_submit", None
    if not info.get("modified"):
        return "empty_patch", await resolution(traj, task)
    verdict = await resolution(traj, task)
    return ("resolved" if verdict is not None and verdict.success else "patch_fails"), verdict


class SweOutcome(Reward):
    """The episode's outcome level, as a value."""

    def __init__(self, values: dict[str, float] | None = None, *, name: str = "swe_outcome") -> None:
        self.values = {**DEFAULT_OUTCOME_VALUES, **(values or {})}
        ordered = [self.values[level] for level in OUTCOME_LEVELS]
        if ordered != sorted(ordered):
            raise ValueError(f"outcome values must not decrease along {OUTCOME_LEVELS}: got {ordered}")
        self.name = name

    async def score(self, traj: Trajectory, task: Task) -> RewardResult:
        level, verdict = await outcome_level(traj, task)
        info = swe_info(traj)
        value = self.values[level]
        components = {self.name: value, "resolved": float(level == "resolved"),
                      "submitted": float(bool(info.get("submitted"))),
                      "modified": float(bool(info.get("modified")))}
        if verdict is not None:
            for key in ("fail_to_pass", "pass_to_pass"):
                components[key] = verdict.components.get(key, 0.0)
        return RewardResult(total=value, components=components, success=level == "resolved",
                            info={"level": level, **({"tests": verdict.info} if verdict is not None else {})})


class StepRewardConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    valid_tool_call: float = Field(0.02, description="per tool call that ran without an error")
    file_edited: float = Field(0.1, description="per step that changed the repository")
    tests_run: float = Field(0.1, description="per step that ran tests")
    max_total: float | None = 1.0


def step_rewards(step: Step, config: StepRewardConfig) -> float:
    swe = step.info.get("swe") if isinstance(step.info.get("swe"), dict) else {}
    valid = sum(1 for r in step.tool_results if not r.is_error)
    return (config.valid_tool_call * valid + config.file_edited * bool(swe.get("edited"))
            + config.tests_run * bool(swe.get("tests_run")))


class SweStepRewards(Reward):
    """Immediate rewards: valid tool calls, steps that edit the repository, steps that run tests."""

    def __init__(self, config: StepRewardConfig | None = None, *, name: str = "swe_steps") -> None:
        self.config = config or StepRewardConfig()
        self.name = name

    async def score(self, traj: Trajectory, task: Task) -> RewardResult:
        per_step = [step_rewards(s, self.config) for s in traj.steps]
        total = sum(per_step)
        if self.config.max_total is not None and total > self.config.max_total:
            per_step = [v * self.config.max_total / total for v in per_step]
            total = self.config.max_total
        edits = sum(1 for s in traj.steps if (s.info.get("swe") or {}).get("edited"))
        test_runs = sum(1 for s in traj.steps if (s.info.get("swe") or {}).get("tests_run"))
        return RewardResult(total=total, per_step=per_step,
                            components={self.name: total, "edits": float(edits), "test_runs": float(test_runs)})


#: The step rewards' cap, as a share of the smallest gap between gated outcome values.
STEP_SHARE_OF_MARGIN = 0.5


def step_cap(values: dict[str, float], gate: OutcomeLevel) -> float | None:
    """The most step rewards may add: below the smallest gap between consecutive outcome values
    from ``gate`` up (None when only ``resolved`` is gated: nothing above it to reach)."""
    levels = OUTCOME_LEVELS[OUTCOME_LEVELS.index(gate):]
    gaps = [values[b] - values[a] for a, b in zip(levels, levels[1:], strict=False)]
    return STEP_SHARE_OF_MARGIN * min(gaps) if gaps else None


def swe_reward(*, gate: OutcomeLevel | None = "patch_fails", values: dict[str, float] | None = None,
               steps: StepRewardConfig | None = None) -> Reward:
    """G-RA for SWE: the outcome, then step rewards gated on the outcome reaching ``gate``,
    capped below the margin to the next outcome level (``step_cap``). ``gate=None``: the
    outcome alone."""
    outcome = SweOutcome(values)
    if gate is None:
        return outcome
    if gate not in OUTCOME_LEVELS:
        raise ValueError(f"gate must be one of {OUTCOME_LEVELS}, not {gate!r}")
    steps = steps or StepRewardConfig()
    cap = step_cap(outcome.values, gate)
    if cap is not None and (steps.max_total is None or steps.max_total > cap):
        steps = steps.model_copy(update={"max_total": cap})
    return GatedAccumulation([GateLevel(reward=outcome, threshold=outcome.values[gate], name="outcome"),
                              GateLevel(reward=SweStepRewards(steps), name="steps")], name="swe")
