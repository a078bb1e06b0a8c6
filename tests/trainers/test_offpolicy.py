"""Async off-policy training: the staleness bound, per-turn policy versions across a weight
push, the sampler's logprobs in the loss, and LocalTrainer's ``rollout.mode: async``."""

import copy
import json

import anyio
import pytest
import torch

from traject.agents.hf import HFPolicy, HFPolicyConfig
from traject.agents.policy import PolicyOutput
from traject.environments.tool_env import ToolEnv
from traject.environments.users.scripted import ScriptedUser
from traject.episode import current_episode
from traject.rewards.base import Reward
from traject.trainers.batching import sequences_from_trajectories
from traject.trainers.config import AlgorithmConfig, ConfigError, OptimConfig, config_from_dict
from traject.trainers.local import LocalTrainer
from traject.trainers.offpolicy import InProcessWeights, OffPolicyRollouts, turn_versions
from traject.trainers.update import PolicyUpdater
from traject.types import Generation, Message, RewardResult, Task

from .test_local_trainer import TASKS


class Length(Reward):
    name = "length"

    async def score(self, traj, task):
        return RewardResult(total=float(len(traj.final_answer or "")))


class _NoWeights:
    """The sink of a scripted policy: it has no weights to receive."""

    def __init__(self):
        self.pushed = []

    async def push(self, version):
        self.pushed.append(version)


class SlowFirstTry:
    """A scripted policy whose turns on task ``slow`` take until the learner reaches version 3;
    each turn records the version current when it started, as a sampler does."""

    def __init__(self):
        self.rl = None

    async def act(self, messages, tools):
        version = self.rl.version
        if current_episode().task_id == "slow" and version < 3:
            while self.rl.version < 3:
                await anyio.sleep(0.001)
        gen = Generation(prompt_ids=[1], completion_ids=[2], logprobs=[-0.1], policy_version=version)
        return PolicyOutput(message=Message.assistant("done", generation=gen))


def _tasks(batch, slow=True):
    return [Task(id="slow" if batch == 0 and slow else f"b{batch}", prompt="go"),
            Task(id=f"b{batch}x", prompt="go")]


def _run_loop(k, on_stale, steps=6, slow=True):
    policy = SlowFirstTry()
    rl = OffPolicyRollouts(policy, lambda: ToolEnv([], max_turns=1, reward=Length()),
                           tasks_for_batch=lambda j: _tasks(j, slow),
                           seed_for_batch=lambda j: j, group_size=2, groups_per_step=2, max_off_policy_steps=k,
                           on_stale=on_stale, concurrency=64)
    policy.rl = rl
    sink = _NoWeights()
    batches, stats = [], []

    async def main():
        async with rl:
            for _ in range(steps):
                async def learn(groups):
                    batches.append([(g.task.id, g.attempt, g.staleness(rl.version), g.versions) for g in groups])
                    stats.append(rl.take_stats())
                await rl.step(learn, sink)

    anyio.run(main)
    return batches, stats, sink


@pytest.mark.parametrize("on_stale", ["drop", "requeue"])
def test_the_staleness_bound_holds_and_stale_groups_are_counted(on_stale):
    batches, stats, sink = _run_loop(1, on_stale)
    assert sink.pushed == [1, 2, 3, 4, 5, 6]
    for batch in batches:
        assert len(batch) == 2
        assert all(staleness <= 1 for _, _, staleness, _ in batch), batches
    # The slow group started at version 0 and came back at version 3: beyond the bound.
    trained = [(task, attempt) for batch in batches for task, attempt, _, _ in batch]
    if on_stale == "drop":
        assert sum(s.dropped for s in stats) == 1 and sum(s.requeued for s in stats) == 0
        assert ("slow", 0) not in trained and ("slow", 1) not in trained
    else:
        # Started again under newer weights (as often as it came back stale), never dropped.
        requeued = sum(s.requeued for s in stats)
        assert requeued >= 1 and sum(s.dropped for s in stats) == 0
        assert all(attempt == requeued for task, attempt in trained if task == "slow")
    assert max(max(s.staleness, default=0) for s in stats) == 1  # the producer did run ahead


def test_bound_zero_is_generate_then_train():
    batches, stats, _ = _run_loop(0, "requeue", steps=4, slow=False)  # a slow group would wait forever
    for step, batch in enumerate(batches):
        # Every group was sampled entirely under the weights it is trained from.
        assert all(versions == [step] for _, _, _, versions in batch), batches


def _tiny(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def _perturbed(model, seed):
    other = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return other


class WaitForUpdate(ScriptedUser):
    """On task ``span``, answers the agent's first turn only once new weights are in."""

    def __init__(self, rl_box):
        super().__init__(["Say more."])
        self.rl_box = rl_box

    async def respond(self, messages):
        while self.rl_box[0].version < 1:
            await anyio.sleep(0.001)
        return await super().respond(messages)


def test_a_trajectory_spanning_a_weight_update_carries_both_versions(tiny_model_path):
    model, tok = _tiny(tiny_model_path)
    sampler = HFPolicy(copy.deepcopy(model), tok, HFPolicyConfig(max_new_tokens=4, seed=1))
    learner = _perturbed(model, 0)
    rl_box, seen = [], []

    class AfterSpan(Length):
        """Later groups finish only once the learner took the spanning one: step 1 trains on it."""

        async def score(self, traj, task):
            while not any(g.task.id == "span" for g in seen):
                await anyio.sleep(0.001)
            return await super().score(traj, task)

    def env():
        task_id = current_episode().task_id
        if task_id == "span":
            return ToolEnv([], max_turns=2, user=WaitForUpdate(rl_box), reward=Length())
        return ToolEnv([], max_turns=1, reward=Length() if task_id == "q1" else AfterSpan())

    rl = OffPolicyRollouts(sampler, env, tasks_for_batch=lambda j: [Task(id="span" if j == 0 else f"q{j}", prompt="hi")],
                           seed_for_batch=lambda j: j, group_size=2, groups_per_step=1, max_off_policy_steps=1)
    rl_box.append(rl)

    async def main():
        async with rl:
            for _ in range(2):
                async def learn(groups):
                    seen.extend(groups)
                await rl.step(learn, InProcessWeights(learner, sampler))

    anyio.run(main)
    assert [g.task.id for g in seen] == ["q1", "span"]
    span = seen[1]
    assert span.staleness(1) == 1
    for traj in span.trajectories:
        assert turn_versions(traj) == [0, 1]
        assert traj.info["policy_versions"] == [0, 1]
    assert sampler.version == 2
    for a, b in zip(sampler.model.parameters(), learner.parameters(), strict=True):
        assert torch.equal(a, b)


def test_the_loss_uses_the_samplers_logprobs(tiny_model_path):
    """Trajectories sampled by old weights, trained by newer ones: the truncated IS weights are
    min(pi_learner / pi_sampler, cap) with pi_sampler the logprobs the sampler recorded."""
    model, tok = _tiny(tiny_model_path)
    sampler = HFPolicy(model, tok, HFPolicyConfig(max_new_tokens=6, seed=2))
    learner = _perturbed(model, 1)

    async def sample():
        rl = OffPolicyRollouts(sampler, lambda: ToolEnv([], max_turns=1, reward=Length()),
                               tasks_for_batch=lambda j: [Task(id=f"t{j}", prompt="Say a number.")],
                               seed_for_batch=lambda j: j, group_size=4, groups_per_step=1, max_off_policy_steps=0)
        async with rl:
            return await rl.next_batch()

    trajs = anyio.run(sample)[0].trajectories
    seqs = sequences_from_trajectories(trajs, [1.0, -1.0, 0.5, -0.5])
    gens = [m.generation for t in trajs for m in t.messages if m.generation is not None]
    assert [lp for s in seqs for lp, m in zip(s.sampler_logprobs, s.mask) if m] == \
        [lp for g in gens for lp in g.logprobs]
    # The learner's own logprobs of the sampled tokens, by a plain forward pass.
    weights, diffs = [], []
    with torch.no_grad():
        for s in seqs:
            logits = learner(torch.tensor([s.ids])).logits[0, :-1].float()
            lp = torch.log_softmax(logits, -1).gather(-1, torch.tensor(s.ids[1:])[:, None])[:, 0]
            for i, m in enumerate(s.mask[1:], start=1):
                if m:
                    diffs.append(abs(float(lp[i - 1]) - s.sampler_logprobs[i]))
                    weights.append(min(float(torch.exp(lp[i - 1] - s.sampler_logprobs[i])), 2.0))
    cap = 2.0
    algo = AlgorithmConfig(tis_cap=cap, skip_zero_advantage=False)
    updater = PolicyUpdater(learner, torch.optim.SGD(learner.parameters(), lr=0.0), algo, OptimConfig(), pad_id=0)
    out = updater.update(seqs)
    assert sum(diffs) / len(diffs) > 1e-3  # the weights differ: the test can tell the two apart
    assert out["update/sampler_logprob_diff"] == pytest.approx(sum(diffs) / len(diffs), rel=1e-3)
    assert out["update/tis_weight"] == pytest.approx(sum(weights) / len(weights), rel=1e-3)


def _config(tmp_path, tiny_model_path, **rollout):
    return config_from_dict({
        "model": {"path": str(tiny_model_path)},
        "rollout": {"group_size": 4, "tasks_per_step": 2, "max_new_tokens": 6, "concurrency": 64, **rollout},
        "algorithm": {"advantage": "grpo", "tis_cap": 2.0},
        "optim": {"lr": 2e-2},
        "eval": {"tasks": {}},
        "trainer": {"steps": 4, "seed": 3, "out_dir": str(tmp_path / "run")},
    })


def test_local_trainer_async_mode(tmp_path, tiny_model_path):
    cfg = _config(tmp_path, tiny_model_path, mode="async", max_off_policy_steps=1)
    trainer = LocalTrainer(cfg, env_factory=lambda: ToolEnv([], max_turns=1, reward=Length()), train_tasks=TASKS, eval_tasks=[])
    trainer.run()
    records = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    steps = [r for r in records if "reward/mean" in r]
    assert len(steps) == 4
    for key in ("offpolicy/staleness_max", "offpolicy/stale_requeued_groups", "update/tis_weight", "time/push_s",
                "sampler/busy_s"):
        assert key in steps[-1], key
    trajs = [json.loads(line) for line in open(tmp_path / "run" / "trajectories.jsonl")]
    assert len(trajs) == 4 * 8
    for t in trajs:
        versions = t["info"]["policy_versions"]
        assert t["info"]["step"] - min(versions) == t["info"]["staleness"] <= 1
    # Every step's weights reached the sampler, which samples from its own copy.
    assert trainer.policy.version == 4 and trainer.policy.model is not trainer.model
    for a, b in zip(trainer.policy.model.parameters(), trainer.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_async_mode_needs_an_off_policy_correction(tmp_path, tiny_model_path):
    cfg = _config(tmp_path, tiny_model_path).model_dump()
    cfg["rollout"]["mode"] = "async"
    cfg["algorithm"]["tis_cap"] = None
    with pytest.raises(ConfigError, match="tis_cap"):
        config_from_dict(cfg)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_local_trainer_samples_through_traject_serve(tmp_path, tiny_model_path, mode):
    """rollout.server_url: token-in/token-out sampling from a real ``traject serve``; the weights
    reach it through its weight-update endpoint after every step."""
    pytest.importorskip("uvicorn")
    import httpx

    from traject.serve import ServeEngine, ServerThread

    server = ServerThread(ServeEngine.load(tiny_model_path, model_name="tiny")).start()
    try:
        cfg = _config(tmp_path, tiny_model_path, mode=mode, max_off_policy_steps=1,
                      server_url=server.base_url + "/v1")
        cfg.trainer.steps = 3
        trainer = LocalTrainer(cfg, env_factory=lambda: ToolEnv([], max_turns=1, reward=Length()),
                               train_tasks=TASKS, eval_tasks=[])
        trainer.run()
        health = httpx.get(server.base_url + "/health").json()
        assert health["policy_version"] == 3
        trajs = [json.loads(line) for line in open(tmp_path / "run" / "trajectories.jsonl")]
        assert len(trajs) == 3 * 8
        for t in trajs:
            versions = t["info"]["policy_versions"]  # as the server reported them
            assert t["info"]["step"] - min(versions) <= (1 if mode == "async" else 0)
        # The server holds exactly the trained weights.
        served = server.engine.policy.model
        for a, b in zip(served.parameters(), trainer.model.parameters(), strict=True):
            assert torch.equal(a, b)
        assert len(list((tmp_path / "run" / "pushed_weights").iterdir())) == 2
    finally:
        server.stop()


def test_async_mode_resumes_with_the_saved_version(tmp_path, tiny_model_path):
    def trainer():
        cfg = _config(tmp_path, tiny_model_path, mode="async", max_off_policy_steps=2)
        return LocalTrainer(cfg, env_factory=lambda: ToolEnv([], max_turns=1, reward=Length()), train_tasks=TASKS,
                            eval_tasks=[])

    first = trainer()
    first.run(stop_after=2)
    assert first.step == 2 and first.policy.version == 2
    resumed = trainer()
    resumed.run()
    assert resumed.step == 4 and resumed.policy.version == 4
    for a, b in zip(resumed.policy.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)
    records = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert [r["policy_version"] for r in records if "reward/mean" in r] == [1, 2, 3, 4]
    for line in open(tmp_path / "run" / "trajectories.jsonl"):
        t = json.loads(line)
        assert 0 <= t["info"]["step"] - min(t["info"]["policy_versions"]) <= 2
