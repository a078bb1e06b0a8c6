from math import comb

import pytest

from traject.eval.stats import bootstrap_mean, default_ks, mean_over_tasks, pass_at_k, pass_hat_k
from traject.eval.summary import summarize
from traject.types import RewardResult, Status, Trajectory


@pytest.mark.parametrize(("n", "c", "k", "at_k", "hat_k"), [
    (5, 2, 2, 1 - 3 / 10, 1 / 10),     # 1 - C(3,2)/C(5,2); C(2,2)/C(5,2)
    (5, 2, 3, 1 - 1 / 10, 0.0),        # 1 - C(3,3)/C(5,3); C(2,3) = 0
    (5, 2, 1, 2 / 5, 2 / 5),
    (3, 3, 3, 1.0, 1.0),
    (4, 0, 2, 0.0, 0.0),
    (10, 7, 4, 1 - comb(3, 4) / comb(10, 4), comb(7, 4) / comb(10, 4)),
    (10, 3, 5, 1 - comb(7, 5) / comb(10, 5), 0.0),
])
def test_pass_at_k_and_pass_hat_k_match_hand_computed_values(n, c, k, at_k, hat_k):
    assert pass_at_k(n, c, k) == pytest.approx(at_k)
    assert pass_hat_k(n, c, k) == pytest.approx(hat_k)


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError, match="0 <= c <= n"):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_hat_k(3, 1, 4)


def test_mean_over_tasks_leaves_out_tasks_with_too_few_samples():
    per_task = [(4, 1), (4, 4), (4, 0), (1, 1)]
    assert mean_over_tasks(per_task, 1).value == pytest.approx((0.25 + 1 + 0 + 1) / 4)
    at2 = mean_over_tasks(per_task, 2)
    assert at2.tasks == 3 and at2.value == pytest.approx((0.5 + 1 + 0) / 3)
    hat2 = mean_over_tasks(per_task, 2, all_k=True)
    assert hat2.value == pytest.approx(1 / 3)
    assert mean_over_tasks([(1, 1)], 2) is None
    assert default_ks(6) == [1, 2, 4, 6] and default_ks(8) == [1, 2, 4, 8] and default_ks(1) == [1]


def test_bootstrap_is_reproducible_under_a_seed_and_brackets_the_mean():
    groups = [[1.0, 0.0, 1.0], [0.0, 0.0], [1.0, 1.0, 1.0, 0.5], [0.2], [0.9, 0.1],
              [0.33], [0.71, 0.05], [0.66, 0.12, 0.98]]
    a = bootstrap_mean(groups, seed=7)
    b = bootstrap_mean(groups, seed=7)
    c = bootstrap_mean(groups, seed=8)
    assert a == b
    assert (a.low, a.high) != (c.low, c.high)
    assert a.mean == pytest.approx(sum(map(sum, groups)) / sum(map(len, groups)))
    assert a.low <= a.mean <= a.high
    assert a.n == 18 and a.tasks == 8
    assert bootstrap_mean([]) is None
    single = bootstrap_mean([[0.5, 1.0]])
    assert single.low == single.high == single.mean == 0.75


def test_bootstrap_interval_narrows_with_more_tasks():
    import random

    rng = random.Random(0)
    few = [[float(rng.random() < 0.5)] for _ in range(20)]
    many = [[float(rng.random() < 0.5)] for _ in range(2000)]
    w_few = bootstrap_mean(few, seed=0)
    w_many = bootstrap_mean(many, seed=0)
    assert (w_many.high - w_many.low) < (w_few.high - w_few.low) / 4


def _traj(task: str, i: int, ok: bool | None, status: Status = Status.COMPLETED, failed: bool = False) -> Trajectory:
    reward = None if ok is None else RewardResult(total=float(ok), components={"m": float(ok)}, success=ok,
                                                  failed=failed)
    return Trajectory(task_id=task, sample_index=i, reward=reward, status=status)


def test_summary_counts_infra_errors_apart_and_never_scores_them():
    trajs = [
        _traj("a", 0, True), _traj("a", 1, False), _traj("a", 2, None, Status.INFRA_ERROR),
        _traj("b", 0, True), _traj("b", 1, True), _traj("b", 2, False, failed=True),
    ]
    s = summarize(trajs, samples=3, seed=0)
    assert s.counts.present == 6 and s.counts.scored == 4
    assert s.counts.infra_error == 1 and s.counts.reward_failed == 1
    # 3 successes of 4 scored; an infra error scored 0 would have given 3/5.
    assert s.success.mean == pytest.approx(3 / 4)
    # pass@2 over tasks with 2 scored samples each: a (n=2, c=1) -> 1, b (n=2, c=2) -> 1
    assert [(e.k, e.value) for e in s.pass_at_k] == [(1, pytest.approx(0.75)), (2, 1.0)]
    assert [(e.k, e.value) for e in s.pass_hat_k] == [(1, pytest.approx(0.75)), (2, 0.5)]


def test_summary_keeps_the_latest_record_of_a_rerun_key():
    first = _traj("a", 0, None, Status.INFRA_ERROR)
    again = _traj("a", 0, True)
    s = summarize([first, again])
    assert s.counts.present == 1 and s.counts.infra_error == 0 and s.success.mean == 1.0
