"""rollout.ray: LocalTrainer's training episodes run in Ray actors on a two-node cluster started
here (loopback only), sampling token in/token out from the ``traject serve`` the trainer starts;
the trajectories train as local ones and the weights reach that server after every step."""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import time
import uuid
from pathlib import Path

import anyio

import pytest
import torch

pytest.importorskip("ray")
pytest.importorskip("uvicorn")

from traject.environments.tool_env import ToolEnv  # noqa: E402
from traject.trainers.config import ConfigError, config_from_dict  # noqa: E402
from traject.trainers.local import LocalTrainer  # noqa: E402

from . import test_offpolicy  # noqa: E402
from .test_local_trainer import TASKS  # noqa: E402
from .test_offpolicy import Length, _config  # noqa: E402


class SlowStart(ToolEnv):
    """Episodes that stay in flight long enough to lose their node: reset takes ``delay`` s
    and leaves a file in ``started`` first."""

    def __init__(self, started: str, delay: float) -> None:
        super().__init__([], max_turns=1, reward=Length())
        self.started, self.delay = started, delay

    async def reset(self, task):
        Path(self.started, f"{os.getpid()}-{task.id}-{uuid.uuid4().hex}").touch()
        await anyio.sleep(self.delay)
        return await super().reset(task)


@pytest.fixture(scope="module")
def cluster():
    from ray import cloudpickle

    from traject.testing.ray_cluster import LocalRayCluster

    # The env factory and its reward are defined in test modules, which the Ray workers
    # cannot import: they travel by value.
    for module in (test_offpolicy, sys.modules[__name__]):
        cloudpickle.register_pickle_by_value(module)
    c = LocalRayCluster(nodes=2).start()
    yield c
    c.stop()
    for module in (test_offpolicy, sys.modules[__name__]):
        cloudpickle.unregister_pickle_by_value(module)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_local_trainer_runs_its_episodes_in_ray_actors_on_two_nodes(cluster, tmp_path, tiny_model_path, mode):
    cfg = _config(tmp_path, tiny_model_path, ray=cluster.address, mode=mode, max_off_policy_steps=1)
    cfg.trainer.steps = 2
    trainer = LocalTrainer(cfg, env_factory=functools.partial(ToolEnv, [], max_turns=1, reward=Length()),
                           train_tasks=TASKS, eval_tasks=[])
    trainer.setup()
    engine = trainer.server.engine  # the traject serve the trainer started for its actors
    assert engine.version == 0
    trainer.run()
    assert trainer.server is None, "the server stops with the run"
    assert engine.version == 2, "each step's weights reached the server"
    for a, b in zip(engine.policy.model.parameters(), trainer.model.parameters(), strict=True):
        assert torch.equal(a, b)

    trajs = [json.loads(line) for line in open(tmp_path / "run" / "trajectories.jsonl")]
    assert len(trajs) == 2 * 8
    assert len({t["info"]["ray_node"] for t in trajs}) == 2, "episodes ran on both nodes"
    for t in trajs:
        assert t["status"] != "infra_error"
        (version,) = t["info"]["policy_versions"]  # as the server reported it
        assert 0 <= t["info"]["step"] - version <= (1 if mode == "async" else 0)
        (view,) = t["token_views"]
        sampled = [lp for lp, m in zip(view["logprobs"], view["mask"], strict=True) if m]
        assert sampled and all(lp < 0 for lp in sampled), "the sampler's logprobs on every sampled token"
        versions = {v for v, m in zip(view["policy_versions"], view["mask"], strict=True) if m}
        assert versions == {version}
    steps = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    steps = [m for m in steps if "reward/mean" in m]
    assert [m["policy_version"] for m in steps] == [1, 2]
    assert all(m["trained_episodes"] == 8 and m["drop/infra_error"] == 0 for m in steps)


@pytest.mark.slow
def test_episodes_of_a_killed_node_are_infra_errors_and_never_trained(cluster, tmp_path, tiny_model_path):
    """Kills the cluster's second node: keep it the module's last test on the cluster."""
    started = tmp_path / "started"
    started.mkdir()
    cfg = _config(tmp_path, tiny_model_path, ray=cluster.address)
    cfg.trainer.steps = 2
    trainer = LocalTrainer(cfg, env_factory=functools.partial(SlowStart, str(started), 1.5),
                           train_tasks=TASKS, eval_tasks=[])
    killed = []

    def kill_when_all_started() -> None:
        deadline = time.monotonic() + 120
        while len(list(started.iterdir())) < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        cluster.kill_node(1)
        killed.append(len(list(started.iterdir())))

    killer = threading.Thread(target=kill_when_all_started)
    killer.start()
    trainer.run()
    killer.join()
    assert killed == [8], "the node died with step 0's 8 episodes in flight"

    trajs = [json.loads(line) for line in open(tmp_path / "run" / "trajectories.jsonl")]
    lost = [t for t in trajs if t["status"] == "infra_error"]
    assert lost and all(t["info"]["step"] == 0 and "RayActorError" in t["error"] for t in lost)
    assert len(lost) < 8, "the head node's episodes finished"
    steps = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    steps = [m for m in steps if "reward/mean" in m]
    assert steps[0]["drop/infra_error"] == len(lost) and steps[0]["trained_episodes"] == 8 - len(lost)
    assert steps[1]["drop/infra_error"] == 0 and steps[1]["trained_episodes"] == 8, "step 1 ran on the head"


def test_rollout_ray_needs_an_address(tmp_path):
    with pytest.raises(ConfigError, match="rollout.ray"):
        config_from_dict({"model": {"tiny": {}}, "rollout": {"ray": " "}})
