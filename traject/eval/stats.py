"""Benchmark statistics that can be trusted: unbiased pass@k, pass^k, and a bootstrap
confidence interval that resamples tasks (samples of one task are not independent).

>>> round(pass_at_k(n=4, c=1, k=2), 4)   # 1 - C(3,2)/C(4,2)
0.5
>>> pass_hat_k(n=4, c=2, k=2)            # C(2,2)/C(4,2)
0.16666666666666666
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb

import numpy as np
from pydantic import BaseModel, ConfigDict


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimator of pass@k (Chen et al., 2021) for one task: the probability that
    at least one of k samples drawn without replacement from the n taken (c correct) is correct."""
    _check(n, c, k)
    if n - c < k:
        return 1.0
    # 1 - C(n-c, k) / C(n, k), as a product to stay exact for large n.
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def pass_hat_k(n: int, c: int, k: int) -> float:
    """pass^k (tau-bench): the probability that all k samples drawn without replacement from
    the n taken (c correct) are correct, C(c, k) / C(n, k)."""
    _check(n, c, k)
    return comb(c, k) / comb(n, k)


def _check(n: int, c: int, k: int) -> None:
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")


def default_ks(max_n: int) -> list[int]:
    """1, 2, 4, ... up to ``max_n``, and ``max_n`` itself."""
    ks, k = [], 1
    while k <= max_n:
        ks.append(k)
        k *= 2
    if max_n >= 1 and ks[-1] != max_n:
        ks.append(max_n)
    return ks


class KEstimate(BaseModel):
    """pass@k or pass^k over the tasks that have at least k scored samples."""

    model_config = ConfigDict(extra="forbid")

    k: int
    value: float
    tasks: int


def mean_over_tasks(per_task: Sequence[tuple[int, int]], k: int, *, all_k: bool = False) -> KEstimate | None:
    """Average pass@k (or pass^k with ``all_k``) over tasks given as (n scored, c successes);
    tasks with fewer than k scored samples are left out. None if no task qualifies."""
    fn = pass_hat_k if all_k else pass_at_k
    values = [fn(n, c, k) for n, c in per_task if n >= k]
    if not values:
        return None
    return KEstimate(k=k, value=float(np.mean(values)), tasks=len(values))


class Estimate(BaseModel):
    """A mean with its 95% bootstrap interval (tasks resampled); ``n`` values from ``tasks`` tasks."""

    model_config = ConfigDict(extra="forbid")

    mean: float
    low: float
    high: float
    n: int
    tasks: int


def bootstrap_mean(groups: Sequence[Sequence[float]], *, seed: int = 0, resamples: int = 2000,
                   confidence: float = 0.95) -> Estimate | None:
    """The mean of all values, with a percentile bootstrap interval that resamples whole groups
    (one group per task) with replacement. The same seed gives the same interval. None when
    there are no values."""
    groups = [g for g in groups if len(g)]
    if not groups:
        return None
    sums = np.array([float(np.sum(g)) for g in groups])
    counts = np.array([len(g) for g in groups], dtype=float)
    mean = float(sums.sum() / counts.sum())
    if len(groups) == 1:
        return Estimate(mean=mean, low=mean, high=mean, n=int(counts.sum()), tasks=1)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(groups), size=(resamples, len(groups)))
    stats = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return Estimate(mean=mean, low=float(low), high=float(high), n=int(counts.sum()), tasks=len(groups))
