import pytest
import torch

from .helpers import traj
from traject.trainers.batching import (
    TrainSequence,
    collate,
    plan_micro_batches,
    select_trainable,
    sequences_from_trajectories,
    should_pack,
)
from traject.types import Status


def test_select_trainable_drops_and_counts():
    good = traj("a", 1.0, [([1, 2, 3], [0, 1, 1])])
    infra = traj("a", 1.0, [([1, 2], [0, 1])], status=Status.INFRA_ERROR)
    failed = traj("a", 1.0, [([1, 2], [0, 1])], failed=True)
    cancelled = traj("a", 0.0, [([1, 2], [0, 1])], status=Status.CANCELLED)
    empty = traj("a", 1.0, [])
    no_reward = good.model_copy(update={"reward": None})
    kept, stats = select_trainable([good, infra, failed, cancelled, empty, no_reward])
    assert kept == [good]
    assert (stats.infra_error, stats.reward_failed, stats.cancelled, stats.no_tokens) == (1, 2, 1, 1)
    assert stats.dropped == 5


def test_sequence_advantages_land_on_trained_tokens_only():
    t = traj("a", 1.0, [([5, 6, 7, 8, 9], [0, 1, 0, 1, 1])], turns=[[-1, 0, -1, 1, 1]])
    (s,) = sequences_from_trajectories([t], [2.0])
    assert s.advantages == [0.0, 2.0, 0.0, 2.0, 2.0]
    (s,) = sequences_from_trajectories([t], [[0.5, -1.0]])
    assert s.advantages == [0.0, 0.5, 0.0, -1.0, -1.0]


def test_truncation_is_counted():
    from traject.trainers.batching import DropStats

    t = traj("a", 1.0, [([1, 2, 3, 4, 5, 6], [0, 1, 1, 1, 1, 1])])
    stats = DropStats()
    (s,) = sequences_from_trajectories([t], [1.0], max_len=4, stats=stats)
    assert len(s) == 4 and stats.truncated == 1


def test_collate_pads_and_masks():
    a = TrainSequence([1, 2, 3], [0, 1, 1], [0, -1, -2], [0, 1, 1])
    b = TrainSequence([4, 5], [0, 1], [0, -3], [0, -1])
    batch = collate([a, b], pad_id=0)
    assert batch.input_ids.tolist() == [[1, 2, 3], [4, 5, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch.loss_mask.tolist() == [[0, 1, 1], [0, 1, 0]]
    assert batch.advantages.tolist() == [[0, 1, 1], [0, -1, 0]]
    assert batch.num_tokens == 3 and batch.real_tokens == 5


def test_collate_never_trains_on_a_sequence_start():
    a = TrainSequence([1, 2], [1, 1], [0, 0], [1, 1])
    assert collate([a]).loss_mask.tolist() == [[0, 1]]


def test_packing_builds_block_diagonal_rows():
    seqs = [TrainSequence([1] * n, [0] + [1] * (n - 1), [0.0] * n, [1.0] * n) for n in (5, 3, 2)]
    batch = collate(seqs, pack=True, row_len=5)
    # first-fit decreasing: [5], [3, 2]
    assert batch.input_ids.shape == (2, 5)
    assert batch.seq_ids.tolist() == [[0, 0, 0, 0, 0], [1, 1, 1, 2, 2]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 4], [0, 1, 2, 0, 1]]
    attn = batch.attention_mask[1, 0]
    assert attn[3].tolist() == [False, False, False, True, False]  # seq 2 never sees seq 1
    assert attn[2].tolist() == [True, True, True, False, False]
    assert batch.loss_mask[1].tolist() == [0, 1, 1, 0, 1]


def test_packed_and_padded_logprobs_agree():
    from .helpers import random_causal_lm
    from traject.trainers.forward import score_tokens

    model = random_causal_lm().eval()
    gen = torch.Generator().manual_seed(1)
    seqs = [TrainSequence(torch.randint(1, 64, (n,), generator=gen).tolist(), [0] + [1] * (n - 1), [0.0] * n,
                          [1.0] * n) for n in (9, 4, 3)]
    with torch.no_grad():
        padded = score_tokens(model, collate(seqs)).logprobs
        packed_batch = collate(seqs, pack=True, row_len=9)
        packed = score_tokens(model, packed_batch).logprobs
        full = score_tokens(model, collate(seqs), selective_head=False).logprobs
    assert torch.allclose(padded, full, atol=1e-5)
    # seq k's tokens in the packed layout
    for k, s in enumerate(seqs):
        rows, cols = (packed_batch.seq_ids == k).nonzero(as_tuple=True)
        got = packed[rows, cols]
        assert torch.allclose(got, padded[k, :len(s)], atol=1e-5)


def test_micro_batch_plan_respects_budget():
    lengths = [10, 3, 8, 2, 9]
    plan = plan_micro_batches(lengths, max_tokens=20)
    assert sorted(i for mb in plan for i in mb) == list(range(5))
    for mb in plan:
        assert len(mb) == 1 or max(lengths[i] for i in mb) * len(mb) <= 20
    assert plan_micro_batches(lengths, max_seqs=2) == [[3, 1], [2, 4], [0]]


def test_should_pack():
    assert not should_pack([10, 10, 9])
    # rows limited to 2 sequences: 3 padded micro-batches (140 tokens) vs 2 packed rows of 50
    assert should_pack([50, 10, 10, 10, 10, 10], max_seqs=2)
    # sorted micro-batches already pad little: no packing
    assert not should_pack([100, 98, 10, 11], max_seqs=2)
    with pytest.raises(ValueError):
        collate([])
