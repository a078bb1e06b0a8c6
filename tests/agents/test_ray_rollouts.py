"""Eval episodes in Ray actors on a two-node Ray cluster started here (ray start --head plus a
second node, reached at 127.0.0.1): trajectories stream into the driver's one run directory,
a node killed mid-run turns its in-flight episodes into infra errors, and --resume with
--retry-infra re-runs exactly those."""

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


@pytest.mark.slow
async def test_eval_on_two_nodes_survives_a_killed_node_and_resumes_its_infra_errors(cluster, tmp_path):
    out = tmp_path / "run"
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: run_eval(config(8), out, ray=cluster.address))
        with anyio.fail_after(120):  # the run is under way on both nodes
            while not (out / "trajectories.jsonl").exists() or len(records(out)) < 2:
                await anyio.sleep(0.1)
        await anyio.to_thread.run_sync(cluster.kill_node, 1)
    trajs = records(out)
    assert len(trajs) == 16, "every episode has a record in the one store: none lost with the node"
    assert len({t.info.get("ray_node") for t in trajs}) == 2, "episodes ran on both nodes"
    lost = [t for t in trajs if t.status is Status.INFRA_ERROR]
    assert lost and all("RayActorError" in (t.error or "") for t in lost)
    assert all(t.status is Status.COMPLETED and t.success for t in trajs if t.status is not Status.INFRA_ERROR)

    results = await run_eval(config(8, retry_infra=True), out, resume=True, ray=cluster.address)
    assert results.complete and results.summary.counts.infra_error == 0
    after = records(out)
    assert len(after) == 16 + len(lost), "the resume ran the infra errors again, nothing else"
    latest = {(t.task_id, t.sample_index): t for t in after}
    assert len(latest) == 16 and all(t.status is Status.COMPLETED for t in latest.values())
    manifest = json.loads((out / "manifest.json").read_text())
    assert [i["new_trajectories"] for i in manifest["invocations"]] == [16, len(lost)]


def test_ray_flag_takes_an_optional_address():
    from traject.cli import optional_value

    assert optional_value(["traject", "eval", "--ray", "-n", "3"], "--ray", "auto")[3] == "auto"
    assert optional_value(["traject", "eval", "--ray"], "--ray", "auto")[-1] == "auto"
    assert optional_value(["traject", "eval", "--ray", "10.0.0.1:6379"], "--ray", "auto")[-1] == "10.0.0.1:6379"
