"""The ``empathy`` env (RLVER): the agent talks with a simulated user whose emotion score it
should lift. The user is an EmotionUser (two model calls per turn: an analyser that moves the
emotion, and a reply in character); the episode ends on goodbye, at the rules' low (and high)
emotion, or after the user's turn limit, where the rules are RLVER's or SAGE's, picked from the
profile file's family unless ``rules=`` names them; the reward is max(final emotion / 100, 0),
from the rewards library.

The agent may think before it answers, in ``<think>…</think>``: the user never sees it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from traject.environments.tool_env import ToolEnv
from traject.environments.users.emotion import RULES, EmotionUser, EmotionUserConfig, load_profiles
from traject.environments.users.llm import SimulatorLLM, SimulatorLLMConfig
from traject.types import Task

if TYPE_CHECKING:
    from traject.rewards.base import Reward

BUILTIN_PROFILES = Path(__file__).parent / "data" / "profiles.jsonl"

SYSTEM_PROMPT = (
    "You are a warm, perceptive conversation partner. The person you are talking with has something on "
    "their mind. Listen, understand what they feel and why, and respond the way a caring, sensible friend "
    "would: short, natural messages, no lectures, no lists."
)
THINK_RULE = (" Before each reply, think privately inside <think>...</think> about how they feel and what "
              "they need; then write your reply after it. Only the reply is shown to them.")


def default_emotion_reward() -> Reward:
    from traject.rewards.emotion import EmotionReward

    return EmotionReward()


def make_empathy_env(*, user_base_url: str | None = None, user_model: str | None = None,
                     user_api_key: str | None = None, rules: str = "auto", start_emotion: float | None = None,
                     max_change: float | None | str = "rules", user_max_turns: int | None = None,
                     end_emotion: float | None = None, end_rule: str | None = None,
                     max_turns: int | None = None, think: bool = True, user_temperature: float = 0.7,
                     reward: Reward | None = None, system_prompt: str = SYSTEM_PROMPT) -> ToolEnv:
    """``rules`` is ``auto`` (each profile's family: SAGE's or RLVER's), ``rlver`` or ``sage``;
    the other rule arguments override that benchmark's values when given (``max_change=None``:
    no clamp)."""
    llm = SimulatorLLM(SimulatorLLMConfig(base_url=user_base_url, model=user_model, api_key=user_api_key,
                                          temperature=user_temperature), name="emotion user simulator")
    given: dict[str, Any] = {"start_emotion": start_emotion, "max_turns": user_max_turns,
                             "end_emotion": end_emotion, "end_rule": end_rule}
    overrides = {k: v for k, v in given.items() if v is not None}
    if max_change != "rules":
        overrides["max_change"] = max_change
    config = EmotionUserConfig(rules=rules, **overrides)
    user = EmotionUser(llm, config=config)
    longest = config.max_turns or max(r.max_turns for r in RULES.values())
    return ToolEnv([], name="empathy", system_prompt=system_prompt + (THINK_RULE if think else ""),
                   max_turns=max_turns or longest + 1, user=user,
                   reward=reward if reward is not None else default_emotion_reward())


def empathy_tasks(split: str = "test", n: int | None = None, seed: int = 0, path: str | Path | None = None,
                  **_: Any) -> list[Task]:
    """The built-in profiles, or an RLVER / SAGE profile JSONL at ``path``; one task per profile."""
    profiles = load_profiles(str(path or BUILTIN_PROFILES))
    tasks = [Task(id=f"empathy-{p.id}", data={"profile": p.model_dump(mode="json")},
                  metadata={"source": "builtin" if path is None else str(path), "rules": p.family})
             for p in profiles]
    return tasks if n is None else tasks[:n]
