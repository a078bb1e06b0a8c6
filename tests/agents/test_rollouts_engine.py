"""The Rollouts engine after its performance work: group-committed store, worker pool, groups,
partial rollouts with policy versions, cancellation."""

from __future__ import annotations

import json
from collections import Counter

import anyio
import pytest

from traject.agents.loop import AgentLoop
from traject.agents.policy import PolicyOutput
from traject.agents.rollouts import PartialRollouts, Rollouts
from traject.agents.store import TrajectoryStore
from traject.environments.registry import load_tasks, make
from traject.rewards.base import GroupReward
from traject.environments.builtin.lookup import solve
from traject.types import Generation, Message, RewardResult, Status, Task, ToolSchema, Trajectory


class OraclePolicy:
    """The lookup oracle, with token ids so that policy versions can be tracked."""

    def __init__(self, delay_s: float = 0.0, slow_s: float | None = None) -> None:
        self.delay_s = delay_s
        self.slow_s = slow_s  # for tasks whose prompt has an odd length: episodes of two speeds
        self.calls = 0

    async def act(self, messages: list[Message], tools: list[ToolSchema]) -> PolicyOutput:
        self.calls += 1
        delay = self.delay_s
        if self.slow_s is not None and len(next(m.text for m in messages if m.role == "user")) % 2:
            delay = self.slow_s
        if delay:
            await anyio.sleep(delay)
        msg = solve(messages, tools)
        n = len(messages)
        # One token per message: what the policy sampled for its own turns, a stand-in elsewhere.
        prompt = [m.generation.completion_ids[0] if m.generation else 1000 + i for i, m in enumerate(messages)]
        msg.generation = Generation(prompt_ids=prompt, completion_ids=[100 + n], logprobs=[-0.5])
        return PolicyOutput(message=msg, prompt_tokens=n, completion_tokens=1)


def _tasks(n: int) -> list[Task]:
    return load_tasks("lookup", n=n, seed=5)


@pytest.mark.anyio
async def test_store_group_commits_concurrent_appends_and_repairs_a_torn_tail(tmp_path):
    path = tmp_path / "t.jsonl"
    store = TrajectoryStore(path)
    trajs = [Trajectory(task_id=f"t{i}", sample_index=0) for i in range(200)]
    async with anyio.create_task_group() as tg:
        for t in trajs:
            tg.start_soon(store.append, t)
    assert store.flushes < 200  # one fsync served many lines
    store.close()
    lines = path.read_bytes().splitlines()
    assert sorted(json.loads(x)["task_id"] for x in lines) == sorted(t.task_id for t in trajs)
    with open(path, "ab") as fh:
        fh.write(b'{"task_id": "torn", "sampl')
    again = TrajectoryStore(path)
    assert len(again.load()) == 200
    again.append_sync(Trajectory(task_id="after", sample_index=0))
    again.close()
    assert [t.task_id for t in TrajectoryStore.read(path)][-1] == "after"


@pytest.mark.anyio
async def test_rollouts_stream_to_the_store_and_skip_what_is_there(tmp_path):
    tasks = _tasks(12)
    with TrajectoryStore(tmp_path / "s.jsonl") as store:
        r = Rollouts(OraclePolicy(), "lookup", group_size=2, concurrency=5, store=store, seed=1)
        first = await r.run(tasks[:7])
        assert len(first) == 14 and all(t.success for t in first)
        assert r.pending(tasks) == [(t, i) for t in tasks[7:] for i in range(2)]
        second = await r.run(tasks)
        assert r.stats.skipped == 14 and len(second) == 10
    keys = Counter((t.task_id, t.sample_index) for t in TrajectoryStore.read(tmp_path / "s.jsonl"))
    assert len(keys) == 24 and set(keys.values()) == {1}


class SpreadReward(GroupReward):
    name = "spread"

    def __init__(self) -> None:
        self.groups: list[list[int]] = []

    async def score_group(self, trajs: list[Trajectory], task: Task) -> list[RewardResult]:
        self.groups.append([t.sample_index for t in trajs])
        return [RewardResult(total=0.1 * t.sample_index) for t in trajs]


@pytest.mark.anyio
async def test_group_rewards_see_whole_groups():
    reward = SpreadReward()
    r = Rollouts(OraclePolicy(), "lookup", group_size=3, concurrency=4, group_reward=reward)
    trajs = await r.run(_tasks(5))
    assert sorted(reward.groups) == [[0, 1, 2]] * 5
    by_index = {t.sample_index: t.reward for t in trajs if t.task_id == trajs[0].task_id}
    assert by_index[2].components["spread"] == pytest.approx(0.2)
    assert by_index[2].total == pytest.approx(1.2)


@pytest.mark.anyio
async def test_partial_rollouts_pause_at_step_boundaries_and_keep_policy_versions():
    tasks = _tasks(4)  # every lookup task takes 3 steps: two lookups, then submit
    policy = OraclePolicy()
    r = Rollouts(policy, "lookup", concurrency=3, partial=PartialRollouts(max_steps_per_run=1), policy_version=0)
    with pytest.raises(RuntimeError, match="async with"):
        await r.run(tasks)
    async with r:
        await _three_runs(r, tasks, policy)


async def _three_runs(r, tasks, policy):
    assert await r.run(tasks) == []
    assert len(r.paused) == 4 and r.stats.paused == 4
    assert r.pending(tasks) == []  # paused episodes are not started again
    r.policy_version = 1
    assert await r.run(tasks) == []
    r.policy_version = 2
    done = await r.run(tasks)
    assert len(done) == 4 and not r.paused and policy.calls == 12
    for t in done:
        assert t.success and t.status is Status.COMPLETED and t.num_turns == 3
        assert t.info["policy_versions"] == [0, 1, 2] and t.info["pauses"] == 2
        (view,) = t.token_views
        assert {v for v, m in zip(view.policy_versions, view.mask, strict=True) if m} == {0, 1, 2}


@pytest.mark.anyio
async def test_stop_after_fills_a_batch_then_pauses_the_rest(tmp_path):
    tasks = _tasks(10)
    slow = [t for t in tasks if len(str(t.prompt)) % 2]
    assert 2 <= len(slow) <= 8
    with TrajectoryStore(tmp_path / "s.jsonl") as store:
        # Fast episodes take ~3 ms, slow ones ~150 ms: once 2 have finished (fast ones), the
        # slow ones in flight are mid-episode and pause at their next step boundary.
        async with Rollouts(OraclePolicy(delay_s=0.001, slow_s=0.05), "lookup", concurrency=10, store=store,
                            partial=PartialRollouts(stop_after=2)) as r:
            first = await r.run(tasks)
            assert 2 <= len(first) < 10 and r.paused
            assert len(first) + len(r.paused) + len(r.pending(tasks)) == 10
            rest = []
            for _ in range(10):
                if not (r.paused or r.pending(tasks)):
                    break
                rest += await r.run(tasks)
    keys = Counter((t.task_id, t.sample_index) for t in TrajectoryStore.read(tmp_path / "s.jsonl"))
    assert len(keys) == 10 and set(keys.values()) == {1}
    assert all(t.success for t in first + rest)
    assert any(t.info.get("pauses") for t in rest)


@pytest.mark.anyio
async def test_cancelling_a_run_closes_every_open_env():
    closed: list[int] = []
    opened: list[int] = []

    def factory():
        env = make("lookup")
        opened.append(id(env))
        original = env.aclose

        async def aclose() -> None:
            closed.append(id(env))
            await original()

        env.aclose = aclose  # type: ignore[method-assign]
        return env

    r = Rollouts(OraclePolicy(delay_s=0.05), factory, concurrency=4)
    with anyio.move_on_after(0.12):
        await r.run(_tasks(20))
    assert opened and set(opened) <= set(closed)


@pytest.mark.anyio
async def test_an_episode_can_be_run_in_pieces():
    env = make("lookup")
    task = _tasks(1)[0]
    episode = AgentLoop(OraclePolicy()).start(env, task)
    assert not await episode.advance(1)
    assert not await episode.advance(1)
    assert await episode.advance(5)
    traj = await episode.finish()
    assert traj.success and traj.num_turns == 3 and traj.usage.model_calls == 3
    assert traj.timings.total_s >= traj.timings.model_s


@pytest.mark.anyio
async def test_leaving_a_partial_rollout_closes_its_paused_episodes():
    closed: list[int] = []

    def factory():
        env = make("lookup")
        original = env.aclose

        async def aclose() -> None:
            closed.append(id(env))
            await original()

        env.aclose = aclose  # type: ignore[method-assign]
        return env

    async with Rollouts(OraclePolicy(), factory, concurrency=2, partial=PartialRollouts(max_steps_per_run=1)) as r:
        await r.run(_tasks(3))
        closed.clear()  # ToolEnv.reset closes first, for the env's reuse
        assert len(r.paused) == 3
    assert len(set(closed)) == 3 and not r.paused
