"""The numbers of an eval run, computed from its trajectories.

Infra errors (the endpoint, a sandbox or a simulated user failed), cancelled episodes and
trajectories whose reward could not be computed are counted apart and left out of every score:
they are never scored 0.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from traject.eval.config import Pricing
from traject.eval.stats import Estimate, KEstimate, bootstrap_mean, default_ks, mean_over_tasks
from traject.types import Status, Task, Trajectory


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Counts(_Model):
    expected: int = 0          # tasks x samples
    present: int = 0           # trajectories in the run (latest record per task and sample)
    scored: int = 0            # counted in the scores
    infra_error: int = 0
    cancelled: int = 0
    reward_failed: int = 0     # the reward could not be computed (e.g. a judge answered garbage)
    unrewarded: int = 0        # no reward at all
    by_status: dict[str, int] = Field(default_factory=dict)

    @property
    def missing(self) -> int:
        return max(0, self.expected - self.present)


class Spread(_Model):
    mean: float
    p50: float
    p95: float
    total: float


class Efficiency(_Model):
    turns: Spread | None = None
    tool_calls: Spread | None = None
    format_errors: Spread | None = None
    prompt_tokens: Spread | None = None
    completion_tokens: Spread | None = None


class Latency(_Model):
    """Seconds per episode, by phase."""

    model: Spread | None = None
    tools: Spread | None = None
    user: Spread | None = None
    reward: Spread | None = None
    total: Spread | None = None


class Cost(_Model):
    pricing: Pricing
    total_usd: float
    per_episode_usd: float


class EvalSummary(_Model):
    label: str = ""
    counts: Counts = Field(default_factory=Counts)
    success: Estimate | None = None
    reward: Estimate | None = None
    pass_at_k: list[KEstimate] = Field(default_factory=list)
    pass_hat_k: list[KEstimate] = Field(default_factory=list)
    components: dict[str, Estimate] = Field(default_factory=dict)
    efficiency: Efficiency = Field(default_factory=Efficiency)
    latency: Latency = Field(default_factory=Latency)
    cost: Cost | None = None
    bootstrap_seed: int = 0

    @property
    def mean_tokens(self) -> float | None:
        e = self.efficiency
        if e.prompt_tokens is None or e.completion_tokens is None:
            return None
        return e.prompt_tokens.mean + e.completion_tokens.mean


def is_scored(t: Trajectory) -> bool:
    return (t.status not in (Status.INFRA_ERROR, Status.CANCELLED) and t.reward is not None
            and not t.reward.failed)


def latest_per_key(trajs: Iterable[Trajectory]) -> list[Trajectory]:
    latest: dict[tuple[str, int], Trajectory] = {}
    for t in trajs:
        latest[(t.task_id, t.sample_index)] = t
    return list(latest.values())


def _spread(values: Sequence[float]) -> Spread | None:
    if not values:
        return None
    a = np.asarray(values, dtype=float)
    return Spread(mean=float(a.mean()), p50=float(np.quantile(a, 0.5)), p95=float(np.quantile(a, 0.95)),
                  total=float(a.sum()))


def summarize(trajs: Iterable[Trajectory], *, tasks: Sequence[Task] | None = None, samples: int | None = None,
              seed: int = 0, pricing: Pricing | None = None, label: str = "") -> EvalSummary:
    """Summarise a run. ``tasks`` and ``samples`` give the expected count (to report what is
    missing); ``seed`` makes the bootstrap intervals reproducible."""
    present = latest_per_key(trajs)
    if tasks is not None:
        wanted = {t.id for t in tasks}
        present = [t for t in present if t.task_id in wanted]
    counts = Counts(present=len(present))
    if tasks is not None and samples is not None:
        counts.expected = len(tasks) * samples
    for t in present:
        counts.by_status[t.status.value] = counts.by_status.get(t.status.value, 0) + 1
        if t.status is Status.INFRA_ERROR:
            counts.infra_error += 1
        elif t.status is Status.CANCELLED:
            counts.cancelled += 1
        elif t.reward is None:
            counts.unrewarded += 1
        elif t.reward.failed:
            counts.reward_failed += 1
    scored = [t for t in present if is_scored(t)]
    counts.scored = len(scored)

    by_task: dict[str, list[Trajectory]] = defaultdict(list)
    for t in scored:
        by_task[t.task_id].append(t)
    order = sorted(by_task)
    groups = [by_task[k] for k in order]
    success = bootstrap_mean([[1.0 if t.success else 0.0 for t in g] for g in groups], seed=seed)
    reward = bootstrap_mean([[t.reward.total for t in g if t.reward] for g in groups], seed=seed)
    component_names = sorted({c for t in scored if t.reward for c in t.reward.components})
    components: dict[str, Estimate] = {}
    for name in component_names:
        est = bootstrap_mean([[t.reward.components[name] for t in g if t.reward and name in t.reward.components]
                              for g in groups], seed=seed)
        if est is not None:
            components[name] = est
    per_task = [(len(g), sum(1 for t in g if t.success)) for g in groups]
    max_n = max((n for n, _ in per_task), default=0)
    pak = [e for k in default_ks(max_n) if (e := mean_over_tasks(per_task, k)) is not None]
    phk = [e for k in default_ks(max_n) if (e := mean_over_tasks(per_task, k, all_k=True)) is not None]

    # Efficiency and latency cover every episode that ran (not only scored ones): an episode
    # that timed out still spent its tokens. Infra errors and cancellations are left out.
    ran = [t for t in present if t.status not in (Status.INFRA_ERROR, Status.CANCELLED)]
    efficiency = Efficiency(
        turns=_spread([t.num_turns for t in ran]),
        tool_calls=_spread([t.usage.tool_calls for t in ran]),
        format_errors=_spread([t.usage.format_errors for t in ran]),
        prompt_tokens=_spread([t.usage.prompt_tokens for t in ran]),
        completion_tokens=_spread([t.usage.completion_tokens for t in ran]),
    )
    latency = Latency(
        model=_spread([t.timings.model_s for t in ran]), tools=_spread([t.timings.tools_s for t in ran]),
        user=_spread([t.timings.user_s for t in ran]), reward=_spread([t.timings.reward_s for t in ran]),
        total=_spread([t.timings.total_s for t in ran]),
    )
    cost = None
    if pricing is not None and ran:
        # Infra errors may have spent tokens too; the estimate counts every recorded token.
        spent = [t for t in present if t.status is not Status.CANCELLED]
        total = sum(pricing.cost(t.usage.prompt_tokens, t.usage.completion_tokens) for t in spent)
        cost = Cost(pricing=pricing, total_usd=total, per_episode_usd=total / len(spent))
    return EvalSummary(label=label, counts=counts, success=success, reward=reward, pass_at_k=pak,
                       pass_hat_k=phk, components=components, efficiency=efficiency, latency=latency,
                       cost=cost, bootstrap_seed=seed)
