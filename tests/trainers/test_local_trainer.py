"""The built-in learner end to end: reward rises on a trivially learnable env; resume is exact."""

import json

import torch

from traject.environments.tool_env import ToolEnv
from traject.rewards.base import Reward
from traject.trainers.config import config_from_dict
from traject.trainers.local import LocalTrainer
from traject.types import RewardResult, Task


class DigitShare(Reward):
    """The share of the reply's characters that are digits: learnable from scratch in a few steps."""

    name = "digit_share"

    async def score(self, traj, task):
        text = traj.final_answer or ""
        value = sum(ch.isdigit() for ch in text) / max(len(text), 1)
        return RewardResult(total=value, success=value > 0.5)


def digits_env() -> ToolEnv:
    return ToolEnv([], name="digits", max_turns=1, reward=DigitShare())


TASKS = [Task(id=f"t{i}", prompt=f"Say a number, please ({i}).") for i in range(16)]


def config(tmp_path, tiny_model_path, **trainer):
    return config_from_dict({
        "model": {"path": str(tiny_model_path)},
        "rollout": {"group_size": 8, "tasks_per_step": 4, "max_new_tokens": 6, "concurrency": 64},
        "algorithm": {"advantage": "grpo"},
        "optim": {"lr": 2e-2, "grad_clip": 1.0},
        "eval": {"tasks": {}},
        "trainer": {"steps": 8, "seed": 3, "out_dir": str(tmp_path / "run"), **trainer},
    })


def test_mean_reward_rises(tmp_path, tiny_model_path):
    trainer = LocalTrainer(config(tmp_path, tiny_model_path), env_factory=digits_env, train_tasks=TASKS,
                           eval_tasks=[])
    trainer.run()
    records = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    rewards = [r["reward/mean"] for r in records if "reward/mean" in r]
    assert len(rewards) == 8
    first, last = sum(rewards[:2]) / 2, sum(rewards[-2:]) / 2
    print("rewards", rewards)
    assert last > first + 0.2, rewards
    for key in ("reward/std", "success", "update/entropy", "update/clip_frac", "update/grad_norm",
                "throughput/train_tokens_per_s", "time/rollout_s", "time/update_s", "drop/total"):
        assert key in records[-1], key
    assert (tmp_path / "run" / "model" / "config.json").exists()
    assert (tmp_path / "run" / "config.yaml").exists()
    lines = open(tmp_path / "run" / "trajectories.jsonl").read().splitlines()
    assert len(lines) == 8 * 32


def test_resume_gives_the_same_state_as_an_uninterrupted_run(tmp_path, tiny_model_path):
    def trainer(out):
        # One episode at a time: each sampled batch has one row, so sampling is bit-exact.
        cfg = config(tmp_path / out, tiny_model_path, steps=4, checkpoint_every=1)
        cfg.rollout.concurrency = 1
        cfg.rollout.tasks_per_step = 2
        cfg.rollout.group_size = 4
        cfg.algorithm.ppo_epochs = 2  # exercises the recomputed old logprobs and the optimizer state
        return LocalTrainer(cfg, env_factory=digits_env, train_tasks=TASKS, eval_tasks=[])

    straight = trainer("a")
    straight.run()
    first = trainer("b")
    first.run(stop_after=2)
    assert first.step == 2
    resumed = trainer("b")
    resumed.run()
    assert resumed.step == 4
    for (name, a), (_, b) in zip(straight.model.named_parameters(), resumed.model.named_parameters(), strict=True):
        assert torch.equal(a, b), name
    for sa, sb in zip(straight.optimizer.state.values(), resumed.optimizer.state.values(), strict=True):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"])
    ma = [json.loads(x) for x in open(tmp_path / "a" / "run" / "metrics.jsonl")]
    mb = [json.loads(x) for x in open(tmp_path / "b" / "run" / "metrics.jsonl")]
    assert [r["reward/mean"] for r in ma] == [r["reward/mean"] for r in mb]
    ta = open(tmp_path / "a" / "run" / "trajectories.jsonl").read().splitlines()
    tb = open(tmp_path / "b" / "run" / "trajectories.jsonl").read().splitlines()
    assert len(ta) == len(tb) == 4 * 8
