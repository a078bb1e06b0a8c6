"""Eval episodes in Ray actors on a two-node Ray cluster on 127.0.0.1 (ray start --head plus a
second node): trajectories stream into the driver's run directory, --resume works, and a
node killed mid-run turns its in-flight episodes into infra errors that --retry-infra re-runs."""

from __future__ import annotations

import json

import anyio
import pytest

pytest.importorskip("ray")

from traject.eval.config import EvalConfig, PolicyConfig, TaskSource  # noqa: E402
from traject.eval.runner import run_eval  # noqa: E402
from traject.types import Status, Trajectory  # noqa: E402

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def cluster():
    from traject.testing.ray_cluster import LocalRayCluster

    c = LocalRayCluster(nodes=2).start()
    yield c
    c.stop()


def config(n: int, **kw) -> EvalConfig:
    return EvalConfig(env="lookup", tasks=TaskSource(n=n, seed=3), samples=2, concurrency=8,
                      policy=PolicyConfig(kind="scripted", target="traject.testing.ray_cluster:slow_oracle"), **kw)


def records(out) -> list[Trajectory]:
    return [Trajectory.model_validate_json(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]


async def test_eval_on_two_ray_nodes_streams_to_one_store_and_resumes(cluster, tmp_path):
    out = tmp_path / "run"
    results = await run_eval(config(6), out, ray=cluster.address)
    assert results.complete and results.summary.counts.missing == 0
    trajs = records(out)
    assert len(trajs) == 12 and all(t.status is Status.COMPLETED and t.success for t in trajs)
    assert len({t.info["ray_node"] for t in trajs}) == 2, "episodes ran on both nodes"
    again = await run_eval(None, out, resume=True, ray=cluster.address)
    assert again.complete and len(records(out)) == 12  # nothing left to run
    manifest = json.loads((out / "manifest.json").read_text())
    assert [i["new_trajectories"] for i in manifest["invocations"]] == [12, 0]


async def test_a_node_killed_mid_run_gives_infra_errors_that_retry_infra_reruns(cluster, tmp_path):
    out = tmp_path / "run"
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: run_eval(config(8), out, ray=cluster.address))
        with anyio.fail_after(120):  # the run is under way on both nodes
            while not (out / "trajectories.jsonl").exists() or len(records(out)) < 2:
                await anyio.sleep(0.1)
        await anyio.to_thread.run_sync(cluster.kill_node, 1)
    trajs = records(out)
    assert len(trajs) == 16, "every episode has a record: none lost with the node"
    lost = [t for t in trajs if t.status is Status.INFRA_ERROR]
    assert lost and all("RayActorError" in (t.error or "") or "Actor" in (t.error or "") for t in lost)
    assert all(t.success for t in trajs if t.status is not Status.INFRA_ERROR)
    results = await run_eval(config(8, retry_infra=True), out, resume=True, ray=cluster.address)
    assert results.complete and results.summary.counts.infra_error == 0
    latest = {(t.task_id, t.sample_index): t for t in records(out)}
    assert len(latest) == 16 and all(t.status is Status.COMPLETED for t in latest.values())
