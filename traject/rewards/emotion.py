"""The emotion reward of RLVER ("Reinforcement Learning with Verifiable Emotion Rewards for
Empathetic Agents", Wang et al., 2025): ``reward = max(final_emotion / 100, 0)``.

The simulated user keeps an emotion score from 0 to 100 and changes it after every reply of
the agent. The reward reads it from the trajectory; this module fixes the contract:

**The user state.** A simulated user returns its state with each turn (``UserTurn.state``);
ToolEnv puts it in ``StepResult.info["user_state"]``, and the agent loop keeps it in
``Step.info["user_state"]`` of the step whose reply the user reacted to. It is a JSON object:

=================  ==========================================================================
``emotion``        float, required: the emotion after this reaction, 0-100
``emotion_trace``  list of floats, required: the starting emotion, then the emotion after
                   each of the user's reactions so far (so ``emotion_trace[-1] == emotion``)
``reasons``        optional list of strings: the analyser's reason for each change
``done_reason``    optional string: why the user ended ("goodbye", "emotion_low",
                   "emotion_high", "max_turns")
=================  ==========================================================================

Other keys are allowed and kept. :class:`UserState` is the typed form.

The reward takes the last step that has a user state. ``per_turn`` is the emotion after each
of the user's reactions, over 100 (``emotion_trace[1:]``); the raw trace is in
``info["emotion_trace"]``. The total is clipped to [0, 1] (RLVER's simulator keeps the score
within 0-100, where ``max(e/100, 0)`` is already in [0, 1]). A trajectory without any user
state is a failed reward (the env did not record one), not a 0.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from traject.rewards.base import Reward
from traject.types import RewardResult, Task, Trajectory

USER_STATE_KEY = "user_state"


class UserState(BaseModel):
    model_config = ConfigDict(extra="allow")

    emotion: float
    emotion_trace: list[float] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    done_reason: str | None = None


class EmotionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "emotion"
    scale: float = Field(default=100.0, gt=0)
    clip_upper: bool = True
    success_threshold: float | None = 100.0   # emotion at or above it: success; None: no verdict
    state_key: str = USER_STATE_KEY


def final_user_state(traj: Trajectory, key: str = USER_STATE_KEY) -> UserState | None:
    for step in reversed(traj.steps):
        raw = step.info.get(key)
        if raw is not None:
            return UserState.model_validate(raw)
    return None


class EmotionReward(Reward):
    def __init__(self, config: EmotionConfig | None = None) -> None:
        self.config = config or EmotionConfig()
        self.name = self.config.name

    async def score(self, traj: Trajectory, task: Task) -> RewardResult:
        c = self.config
        try:
            state = final_user_state(traj, c.state_key)
        except ValidationError as exc:
            return RewardResult(failed=True, error=f"Step.info[{c.state_key!r}] is not a user state: "
                                f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}")
        if state is None:
            return RewardResult(failed=True, error=f"no step has info[{c.state_key!r}]: the env recorded "
                                "no simulated-user state, so there is no emotion to reward")
        trace = state.emotion_trace or [s.emotion for s in _states(traj, c.state_key)]
        total = max(state.emotion / c.scale, 0.0)
        if c.clip_upper:
            total = min(total, 1.0)
        per_turn = [e / c.scale for e in (trace[1:] if state.emotion_trace else trace)]
        start = trace[0] if trace else state.emotion
        return RewardResult(
            total=total,
            components={self.name: total, "final_emotion": state.emotion, "start_emotion": start,
                        "emotion_change": state.emotion - start},
            per_turn=per_turn,
            success=None if c.success_threshold is None else state.emotion >= c.success_threshold,
            info={"emotion_trace": list(trace), "reasons": state.reasons, "done_reason": state.done_reason},
        )


def _states(traj: Trajectory, key: str) -> list[UserState]:
    return [UserState.model_validate(s.info[key]) for s in traj.steps if s.info.get(key) is not None]
