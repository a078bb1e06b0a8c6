"""The agent-loop YAML that registers TrajectAgentLoop with veRL.

veRL 0.9.1 reads ``actor_rollout_ref.rollout.agent.agent_loop_config_path``: a YAML list of
hydra configs, each with a ``name`` (what a dataset row's ``agent_name`` selects) and a
``_target_`` class; every other key becomes a constructor argument of that class.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from traject.trainers.verl.dataset import DEFAULT_AGENT_NAME

AGENT_LOOP_TARGET = "traject.trainers.verl.agent_loop.TrajectAgentLoop"


class AgentLoopSettings(BaseModel):
    """The constructor arguments of TrajectAgentLoop that the YAML carries."""

    model_config = ConfigDict(extra="forbid")

    #: Env used when a row does not name one in ``extra_info.env``.
    env: str
    #: Config of each env by name, passed to ``traject.make(name, **config)``.
    env_configs: dict[str, dict[str, JsonValue]] = Field(default_factory=dict)
    tool_format: str = "hermes"
    episode_timeout_s: float | None = None
    max_steps: int = 1000
    #: Base seed of the episodes' seeds (simulated users, generated envs).
    seed: int = 0
    #: Where each worker process appends its trajectories as JSONL (None: not kept).
    store_dir: str | None = None
    #: Reward component names reported as one number each in veRL's reward_extra_info (and
    #: so in its metrics); without them, the legacy trainer gets components as JSON only.
    reward_components: list[str] | None = None
    #: rollout.max_new_tokens: the most tokens one assistant turn may sample.
    max_new_tokens: int | None = None
    #: Put each assistant turn's reward (``turn_rewards``: per_turn or per_step) on the last
    #: token of that turn instead of the trajectory's total on the last token (the turn estimator).
    turn_scores: bool = False
    turn_rewards: str = "per_turn"
    #: Leave the score to veRL's reward loop (the traject_group reward manager adds a GroupReward).
    defer_reward: bool = False


def agent_loop_entry(settings: AgentLoopSettings, *, name: str = DEFAULT_AGENT_NAME) -> dict:
    return {"name": name, "_target_": AGENT_LOOP_TARGET, **settings.model_dump()}


def write_agent_loop_config(path: str | Path, settings: AgentLoopSettings, *,
                            name: str = DEFAULT_AGENT_NAME) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump([agent_loop_entry(settings, name=name)], sort_keys=False))
    return path
