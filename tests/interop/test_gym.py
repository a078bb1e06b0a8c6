"""traject.gym: a traject env as a text gymnasium.Env, checked by gymnasium's own env checker."""

from __future__ import annotations

import json
import math
import warnings

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env

import traject.gym
from traject.environments.registry import load_tasks
from traject.environments.tool_env import ToolEnv
from traject.interop.gym_env import TrajectGymEnv, UnsupportedObservation
from traject.tools.decorator import tool
from traject.types import ImagePart, Task


@tool
async def screenshot() -> ImagePart:
    """Take a screenshot."""
    return ImagePart(data="iVBORw0KGgo=")


def _total(task) -> int:
    return sum(task.data["prices"][item] * qty for item, qty in task.data["order"])


def _call(name: str, **arguments) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


def test_passes_gymnasiums_env_checker() -> None:
    env = traject.gym.make("lookup", task_options={"n": 5, "seed": 0})
    try:
        check_env(env, skip_render_check=True)  # no spec: the render-mode and close checks need one
    finally:
        env.close()


def test_registered_with_gymnasium_it_passes_every_check() -> None:
    env_id = traject.gym.register("lookup", task_options={"n": 3, "seed": 2})
    assert env_id == "traject/lookup-v0"
    env = gymnasium.make(env_id)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no check may be skipped with a warning
            check_env(env.unwrapped)
        obs, info = env.reset(seed=0)
        assert isinstance(obs, str) and info["tools"][0]["function"]["name"] == "lookup"
    finally:
        env.close()


def test_a_text_episode_with_hermes_tool_calls() -> None:
    tasks = load_tasks("lookup", n=3, seed=1)
    env = traject.gym.make("lookup", tasks=tasks)
    try:
        obs, info = env.reset(seed=7, options={"task_id": tasks[2].id})
        assert info["task_id"] == tasks[2].id
        assert '"name": "lookup"' in obs and "<tool_call>" in obs  # tools rendered in hermes' prompt
        assert obs.endswith(tasks[2].prompt if isinstance(tasks[2].prompt, str) else tasks[2].prompt[-1].text)
        assert obs in env.observation_space
        item = tasks[2].data["order"][0][0]
        obs, reward, terminated, truncated, info = env.step("Let me check. " + _call("lookup", item=item))
        assert obs == f"<tool_response>\n{tasks[2].data['prices'][item]}\n</tool_response>"
        assert (reward, terminated, truncated) == (0.0, False, False)
        assert info["tool_calls"][0]["name"] == "lookup"
        # A botched call is an observation the model reads, not an exception.
        obs, reward, terminated, _, info = env.step('<tool_call>{"name": "lookup", "arguments": {</tool_call>')
        assert "could not be parsed" in obs and info["format_errors"] == 1 and not terminated
        obs, reward, terminated, truncated, info = env.step(_call("submit", answer=_total(tasks[2])))
        assert terminated and reward == 1.0 and info["reward"]["success"] is True
        with pytest.raises(RuntimeError, match="reset"):
            env.step("more")
    finally:
        env.close()


def test_configured_format_and_a_failed_reward_is_nan() -> None:
    from traject.rewards.base import Reward

    class Broken(Reward):
        async def score(self, traj, task):
            raise RuntimeError("judge down")

    env = traject.gym.make("lookup", tool_format="pythonic", task_options={"n": 2, "seed": 0})
    env.env.reward = Broken()
    try:
        obs, _ = env.reset(seed=0)
        _, reward, terminated, _, info = env.step("[submit(answer=3)]")
        assert terminated and math.isnan(reward) and info["reward_failed"]
    finally:
        env.close()


def test_an_image_observation_is_refused_by_name() -> None:
    env = TrajectGymEnv(ToolEnv([screenshot], name="pictures"), [Task(id="p", prompt="Look.")])
    try:
        env.reset(seed=0)
        with pytest.raises(UnsupportedObservation, match=r"tool message holds 1 image\(s\).*text only"):
            env.step(_call("screenshot"))
    finally:
        env.close()
