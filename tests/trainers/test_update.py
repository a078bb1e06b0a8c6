import copy

import pytest
import torch

from traject.trainers.advantage import assistant_turn_rewards, compute_advantages
from traject.trainers.batching import TrainSequence
from traject.trainers.config import AlgorithmConfig, OptimConfig
from traject.trainers.update import PolicyUpdater
from traject.types import Message, RewardResult

from .helpers import random_causal_lm, traj


def seqs(n: int = 6) -> list[TrainSequence]:
    gen = torch.Generator().manual_seed(0)
    out = []
    for i in range(n):
        length = 6 + 3 * i
        mask = [0, 0] + [1, 1, 0] * ((length - 2) // 3) + [1] * ((length - 2) % 3)
        adv = (1.0 if i % 2 else -1.0)
        out.append(TrainSequence(torch.randint(1, 64, (length,), generator=gen).tolist(), mask,
                                 [-1.0] * length, [adv * m for m in mask], source=i))
    return out


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"])
@pytest.mark.parametrize("packing", ["off", "on"])
def test_gradient_accumulation_equals_one_big_batch(agg, packing):
    base = random_causal_lm(seed=2)

    def run(micro_tokens: int) -> list[torch.Tensor]:
        model = copy.deepcopy(base)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        algo = AlgorithmConfig(loss_agg=agg)
        optim = OptimConfig(lr=0.1, micro_batch_tokens=micro_tokens, grad_clip=None, packing=packing)
        metrics = PolicyUpdater(model, opt, algo, optim, pad_id=0).update(seqs())
        assert metrics["update/optimizer_steps"] == 1
        return [p.detach().clone() for p in model.parameters()]

    one = run(10_000)
    many = run(40)
    for a, b in zip(one, many, strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert any(not torch.equal(a, b) for a, b in zip(one, base.parameters(), strict=True))


def test_update_metrics_and_ppo_epochs():
    model = random_causal_lm(seed=2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    algo = AlgorithmConfig(ppo_epochs=2, mini_batches=2, kl_coef=0.1)
    ref = copy.deepcopy(model)
    m = PolicyUpdater(model, opt, algo, OptimConfig(lr=1e-2), pad_id=0, ref_model=ref).update(seqs())
    assert m["update/optimizer_steps"] == 4
    for key in ("update/pg_loss", "update/clip_frac", "update/entropy", "update/kl", "update/grad_norm",
                "update/tokens_per_s"):
        assert key in m, key
    # the second epoch sees a moved policy: its ratio differs from 1
    assert m["update/ppo_kl"] != 0.0


def test_all_zero_advantages_skip_the_update():
    model = random_causal_lm(seed=2)
    before = [p.clone() for p in model.parameters()]
    zero = [TrainSequence(s.ids, s.mask, s.sampler_logprobs, [0.0] * len(s)) for s in seqs(2)]
    m = PolicyUpdater(model, torch.optim.SGD(model.parameters(), lr=1.0), AlgorithmConfig(), OptimConfig(),
                      pad_id=0).update(zero)
    assert m["update/skipped"] == 1.0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_compute_advantages_groups_by_task():
    ts = [traj("a", 1.0, [], index=0), traj("a", 0.0, [], index=1), traj("b", 0.5, [], index=0),
          traj("b", 0.5, [], index=1)]
    assert compute_advantages(ts, AlgorithmConfig(advantage="dr_grpo")) == [0.5, -0.5, 0.0, 0.0]
    assert compute_advantages(ts, AlgorithmConfig(advantage="rloo")) == [1.0, -1.0, 0.0, 0.0]


def test_turn_rewards_map_conversation_turns_to_assistant_messages():
    msgs = [Message.system("s"), Message.user("u0"), Message.assistant("a"), Message.tool("r", tool_call_id="1", name="t"),
            Message.assistant("b"), Message.user("u1"), Message.assistant("c")]
    t = traj("a", 1.0, [], messages=msgs)
    t.reward = RewardResult(total=1.0, per_turn=[0.25, 1.0])
    assert assistant_turn_rewards(t) == [0.25, 0.25, 1.0]
    t.reward = RewardResult(total=1.0, per_step=[0.1, 0.2, 0.3])
    assert assistant_turn_rewards(t, "per_step") == [0.1, 0.2, 0.3]
    assert assistant_turn_rewards(t) == [0.1, 0.2, 0.3]  # falls back to per_step
    t.reward = RewardResult(total=1.0)
    with pytest.raises(ValueError, match="per_turn or per_step"):
        assistant_turn_rewards(t)


def test_turn_mode_end_to_end():
    msgs = [Message.user("u0"), Message.assistant("a"), Message.user("u1"), Message.assistant("b")]
    ts = []
    for i, (r0, r1) in enumerate([(1.0, 0.0), (0.0, 1.0)]):
        t = traj("a", r0 + r1, [], index=i, messages=msgs)
        t.reward = RewardResult(total=r0 + r1, per_turn=[r0, r1])
        ts.append(t)
    assert compute_advantages(ts, AlgorithmConfig(advantage="turn")) == [[0.5, -0.5], [-0.5, 0.5]]
