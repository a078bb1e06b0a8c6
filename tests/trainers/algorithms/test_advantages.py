"""Advantage estimators against values worked out by hand."""

import math

import pytest
import torch

from traject.trainers.algorithms import (
    grpo_advantages,
    reinforce_pp_baseline_advantages,
    rloo_advantages,
    turn_level_advantages,
)


def close(a: torch.Tensor, b: list[float], tol: float = 1e-5) -> None:
    assert a.shape == (len(b),)
    assert torch.allclose(a.double(), torch.tensor(b, dtype=torch.float64), atol=tol), (a.tolist(), b)


def test_grpo_divides_by_the_unbiased_group_std():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5])
    g = torch.tensor([7, 7, 7, 7, 3])
    # group 7: mean 0.5, unbiased std sqrt(4 * 0.25 / 3) = sqrt(1/3); group 3 has one sample
    s = math.sqrt(1 / 3) + 1e-6
    close(grpo_advantages(r, g), [0.5 / s, -0.5 / s, -0.5 / s, 0.5 / s, 0.0])


def test_dr_grpo_only_centres():
    r = torch.tensor([2.0, 0.0, 1.0, 5.0, 3.0])
    g = torch.tensor([0, 0, 0, 1, 1])
    close(grpo_advantages(r, g, norm_by_std=False), [1.0, -1.0, 0.0, 1.0, -1.0])


def test_grpo_all_equal_group_gives_zero():
    r = torch.tensor([1.0, 1.0, 1.0])
    g = torch.tensor([0, 0, 0])
    close(grpo_advantages(r, g), [0.0, 0.0, 0.0])


def test_rloo_uses_the_mean_of_the_others():
    r = torch.tensor([1.0, 0.0, 0.0, 4.0, 2.0])
    g = torch.tensor([0, 0, 0, 1, 1])
    # i=0: 1 - (0+0)/2 = 1; i=1: 0 - (1+0)/2 = -0.5; group 1: 4 - 2 = 2, 2 - 4 = -2
    close(rloo_advantages(r, g), [1.0, -0.5, -0.5, 2.0, -2.0])


def test_rloo_single_sample_is_zero():
    close(rloo_advantages(torch.tensor([3.0]), torch.tensor([0])), [0.0])


def test_reinforce_pp_baseline_whitens_over_the_batch():
    r = torch.tensor([1.0, 0.0, 3.0, 1.0])
    g = torch.tensor([0, 0, 1, 1])
    # centred: [0.5, -0.5, 1, -1]; mean 0; unbiased var (0.25+0.25+1+1)/3
    sd = math.sqrt(2.5 / 3)
    close(reinforce_pp_baseline_advantages(r, g), [0.5 / sd, -0.5 / sd, 1 / sd, -1 / sd])


def test_reinforce_pp_baseline_weighs_by_tokens():
    r = torch.tensor([1.0, 0.0, 3.0, 1.0])
    g = torch.tensor([0, 0, 1, 1])
    # weights 1,1,2,2 (6 tokens): mean 0, var (0.25+0.25+2+2)/6 = 0.75, times 6/5 -> 0.9
    sd = math.sqrt(0.9)
    out = reinforce_pp_baseline_advantages(r, g, token_counts=torch.tensor([1, 1, 2, 2]))
    close(out, [0.5 / sd, -0.5 / sd, 1 / sd, -1 / sd])


def test_turn_level_uses_only_members_that_reached_the_turn():
    # three samples of one task: a reached 3 turns, b 2, c 1; d is alone in its group
    rewards = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 0]])
    groups = torch.tensor([0, 0, 0, 1])
    adv = turn_level_advantages(rewards, mask, groups)
    expected = torch.tensor([
        [1 / 3, -0.5, 0.0],   # turn 0: mean 2/3; turn 1: mean of a, b = 0.5; turn 2: only a -> 0
        [-2 / 3, 0.5, 0.0],
        [1 / 3, 0.0, 0.0],
        [0.0, 0.0, 0.0],      # a group of one: never enough members
    ])
    assert torch.allclose(adv, expected, atol=1e-6), adv


def test_turn_level_min_count_and_reward_to_go():
    rewards = torch.tensor([[1.0, 1.0], [0.0, 0.0], [0.0, 1.0]])
    mask = torch.ones(3, 2)
    groups = torch.tensor([0, 0, 0])
    # reward-to-go: [[2, 1], [0, 0], [1, 1]]; turn 0 mean 1, turn 1 mean 2/3
    adv = turn_level_advantages(rewards, mask, groups, reward_to_go=True)
    assert torch.allclose(adv, torch.tensor([[1.0, 1 / 3], [-1.0, -2 / 3], [0.0, 1 / 3]]), atol=1e-6)
    # three members reached each turn: with min_count=4 every advantage is 0
    assert torch.count_nonzero(turn_level_advantages(rewards, mask, groups, min_count=4)) == 0


def test_turn_level_rejects_bad_shapes():
    with pytest.raises(ValueError, match="must both be"):
        turn_level_advantages(torch.zeros(3), torch.ones(3), torch.zeros(3))
