"""A GroupReward named in the config scores each task's G samples together in LocalTrainer's
rollouts (and only where there is a group: not in evals of one sample, not for SFT demos)."""

import anyio

from traject.agents.scripted import ScriptedPolicy
from traject.environments.builtin.lookup import lookup_tasks, solve
from traject.episode import current_episode
from traject.trainers.config import config_from_dict
from traject.trainers.local import LocalTrainer
from traject.types import Message, ToolCall


def two_right_one_wrong(messages, tools):
    """The expert, except that sample 2 of each task submits one more than the total."""
    msg = solve(messages, tools)
    call = msg.tool_calls[0]
    if call.name == "submit" and current_episode().sample_index == 2:
        return Message.assistant(tool_calls=[ToolCall(name="submit", arguments={"answer": call.arguments["answer"] + 1})])
    return msg


def test_local_trainer_scores_groups_with_the_configured_group_reward(tmp_path):
    cfg = config_from_dict({
        "model": {"path": str(tmp_path / "unused")},
        "env": {"name": "lookup", "group_reward": "traject.rewards.consensus:MajorityVote"},
        "rollout": {"group_size": 3, "tasks_per_step": 2},
        "trainer": {"out_dir": str(tmp_path / "run")},
    })
    trainer = LocalTrainer(cfg)
    tasks = lookup_tasks(split="train", n=2, seed=5)

    async def run(group_size):
        return await trainer.rollout(tasks, group_size=group_size, seed=1, policy=ScriptedPolicy(two_right_one_wrong))

    trajs = anyio.run(run, 3)
    assert len(trajs) == 6
    for t in trajs:
        right = t.sample_index != 2
        # the env's own reward (answer match) plus the group's vote, as one more component
        assert t.reward.components["majority_vote"] == (1.0 if right else 0.0)
        assert t.reward.total == (2.0 if right else 0.0)
    # one sample per task (evals, SFT demonstrations): no group, so no group reward
    alone = anyio.run(run, 1)
    assert all("majority_vote" not in t.reward.components for t in alone)
