"""The G-RA paper's SWE metrics over a set of trajectories.

* completion rate: episodes that ended with ``submit``;
* modification rate: episodes whose repository differed from ``base_commit`` when they ended
  (the agent changed something before submitting, or before its turns ran out);
* resolve rate: episodes whose patch made every FAIL_TO_PASS and PASS_TO_PASS test pass.

Infrastructure failures are left out of the denominators and counted apart.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from traject.environments.swe.reward import swe_info
from traject.types import Status, Trajectory


class SweMetrics(BaseModel):
    model_config = ConfigDict(extra="forbid")

    episodes: int = 0
    infra_errors: int = 0
    completion_rate: float = 0.0
    modification_rate: float = 0.0
    resolve_rate: float = 0.0


def swe_metrics(trajs: Iterable[Trajectory]) -> SweMetrics:
    counted = submitted = modified = resolved = infra = 0
    for traj in trajs:
        if traj.status is Status.INFRA_ERROR:
            infra += 1
            continue
        counted += 1
        info = swe_info(traj)
        submitted += bool(info.get("submitted"))
        modified += bool(info.get("modified"))
        resolved += bool(info.get("resolved"))
    rate = (lambda k: k / counted) if counted else (lambda k: 0.0)
    return SweMetrics(episodes=counted, infra_errors=infra, completion_rate=rate(submitted),
                      modification_rate=rate(modified), resolve_rate=rate(resolved))
