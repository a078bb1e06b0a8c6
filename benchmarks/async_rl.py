"""End-to-end RL steps/s: synchronous (generate, then train) vs async off-policy training at
staleness bounds 1 and 2, side by side in one run, on two workloads.

    PYTHONPATH=. python benchmarks/async_rl.py [--quick] [--train-s 3.0] [--json out.json]

Every variant runs the same code as ``LocalTrainer``'s ``rollout.mode: async``:
``traject.trainers.offpolicy.OffPolicyRollouts`` (producer, staleness gate, weight versions).

(a) simulated: benchmarks/sim_server.py (a continuous-batching engine model, a separate
    process) serves the policy over HTTP (OpenAIPolicy); episodes run tools through ToolEnv
    with the workload's long-tailed latencies; the trainer step is ``--train-s`` seconds on
    the trainer's own devices (a sleep), and each weight push pauses the engine for
    ``--push-s``. "sync" is the same loop with ``max_off_policy_steps = 0``: a batch is
    generated under the current weights, then trained on. Each sample of a group is its own
    episode in the engine model (own output lengths and tool latencies); every variant gets
    the same draws for the same batch.
(b) tiny model: the real ``LocalTrainer`` on a locally built tiny model (CPU), sampling through
    ``traject serve`` (a separate process: ``rollout.server_url``, token in/token out, the
    weights pushed to its weight-update endpoint after every step), ``rollout.mode`` sync vs
    async; 3-turn conversations with a scripted user. Sync here is LocalTrainer's own sync
    mode (generate, train, push). ``--tiny-in-process`` samples with an in-process HFPolicy
    instead (no server).

Steps/s are steady state: from the end of the first step to the end of the last (the first
step fills the pipeline). Model busy is the share of that time the inference engine (a) or
the sampler (b) was computing. ``speedup`` in the JSON: the best async variant at staleness
<= 2 over sync, on (a).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx

sys.path.insert(0, str(Path(__file__).parent))

from priority import raise_priority  # noqa: E402
from rollout import Sim  # noqa: E402
from workload import Workload  # noqa: E402

from traject.agents.openai_policy import OpenAIPolicy  # noqa: E402
from traject.environments.tool_env import ToolEnv  # noqa: E402
from traject.episode import current_episode  # noqa: E402
from traject.tools import ToolContext, ToolOutput, tool  # noqa: E402
from traject.trainers.offpolicy import Group, OffPolicyRollouts  # noqa: E402
from traject.types import Status, Task  # noqa: E402

VARIANTS = (("sync", 0), ("async", 1), ("async", 2))


@dataclass
class Row:
    workload: str
    variant: str
    max_off_policy_steps: int
    steps: int
    steady_s: float
    busy_s: float
    total_s: float
    staleness_mean: float = 0.0
    stale_requeued: int = 0
    stale_dropped: int = 0
    episodes: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def steps_per_s(self) -> float:
        return (self.steps - 1) / self.steady_s

    @property
    def busy_fraction(self) -> float:
        return self.busy_s / self.steady_s

    def as_dict(self) -> dict[str, object]:
        return {"workload": self.workload, "variant": self.variant, "max_off_policy_steps": self.max_off_policy_steps,
                "steps": self.steps, "steps_per_s": self.steps_per_s, "model_busy": self.busy_fraction,
                "steady_s": self.steady_s, "total_s": self.total_s, "staleness_mean": self.staleness_mean,
                "stale_requeued_groups": self.stale_requeued, "stale_dropped_groups": self.stale_dropped,
                "episodes": self.episodes, **self.extra}


# --- (a) the simulated engine ---------------------------------------------------------------


def _episode_number(task_id: str, sample_index: int) -> int:
    digest = hashlib.blake2b(f"{task_id}/{sample_index}".encode(), digest_size=6).digest()
    return int.from_bytes(digest, "big")


def sim_env(w: Workload) -> ToolEnv:
    """One episode of the workload: the engine and the tools draw from its episode number."""
    ep = current_episode()
    assert ep is not None
    n = _episode_number(ep.task_id, ep.sample_index)

    @tool
    async def work(ctx: ToolContext) -> str:
        """Do one unit of work."""
        k = ctx.state.get("turn", 0)
        ctx.state["turn"] = k + 1
        await anyio.sleep(w.tool_s(n, k))
        return "result " * 40

    @tool
    async def submit(ctx: ToolContext, answer: int) -> ToolOutput:
        """Submit and end the episode.

        Args:
            answer: The answer.
        """
        await anyio.sleep(w.tool_s(n, ctx.state.get("turn", 0)))
        return ToolOutput(content="Submitted.", done=True, final_answer=str(answer))

    return ToolEnv([work, submit], name="sim", system_prompt=f"You are a worker on episode {n}.",
                   max_turns=w.turns + 1, tool_timeout_s=120)


class SimWeights:
    """The weight push of (a): the engine pauses ``pause_s`` to load them."""

    def __init__(self, client: httpx.AsyncClient, base: str, pause_s: float) -> None:
        self.client, self.base, self.pause_s = client, base, pause_s

    async def push(self, version: int) -> None:
        r = await self.client.post(self.base + "/sim/weights", json={"version": version, "pause_s": self.pause_s})
        r.raise_for_status()


async def run_sim(sim: Sim, w: Workload, *, k: int, steps: int, groups: int, group_size: int,
                  train_s: float, push_s: float) -> Row:
    sim.set_workload(w)
    policy = OpenAIPolicy(model="sim", base_url=sim.url, max_tokens=None, request_timeout_s=600,
                          return_token_ids=False)  # the simulated engine samples no tokens
    rl = OffPolicyRollouts(policy, lambda: sim_env(w),
                           tasks_for_batch=lambda j: [Task(id=f"b{j}t{i}", prompt="Do the work.") for i in range(groups)],
                           seed_for_batch=lambda j: j, group_size=group_size, groups_per_step=groups,
                           max_off_policy_steps=k, on_stale="requeue", concurrency=10_000)
    staleness: list[int] = []
    requeued = dropped = episodes = bad = 0

    async def learn(batch: list[Group]) -> None:
        nonlocal requeued, dropped, episodes, bad
        stats = rl.take_stats()
        staleness.extend(stats.staleness)
        requeued += stats.requeued
        dropped += stats.dropped
        trajs = [t for g in batch for t in g.trajectories]
        episodes += len(trajs)
        bad += sum(t.status is not Status.COMPLETED for t in trajs)
        await anyio.sleep(train_s)  # the trainer step, on the trainer's own devices

    ends: list[float] = []
    busy: list[float] = []
    async with httpx.AsyncClient(timeout=600) as client:
        sink = SimWeights(client, sim.base, push_s)
        t0 = time.perf_counter()
        async with rl:
            for _ in range(steps):
                await rl.step(learn, sink)
                ends.append(time.perf_counter())
                busy.append((await client.get(sim.base + "/sim/stats")).json()["busy_s"])
    await policy.aclose()
    if bad:
        raise RuntimeError(f"{bad} simulated episodes did not complete")
    return Row("(a) simulated engine", "sync" if k == 0 else "async", k, steps, ends[-1] - ends[0],
               busy[-1] - busy[0], ends[-1] - t0, sum(staleness) / max(len(staleness), 1), requeued, dropped,
               episodes)


# --- (b) the tiny model, in-process ----------------------------------------------------------


class Served:
    """``traject serve MODEL`` in its own process, on a free port of 127.0.0.1."""

    def __init__(self, model_path: Path, max_batch_size: int) -> None:
        import socket
        import subprocess

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "traject.cli", "serve", str(model_path), "--port", str(port),
                                      "--max-batch-size", str(max_batch_size), "--model-name", "tiny"],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(self.base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read() if self.proc.stderr and self.proc.poll() is not None else ""
                self.close()
                raise RuntimeError(f"traject serve did not come up: {err[-2000:]}")
            time.sleep(0.25)

    def busy_s(self) -> float:
        return float(httpx.get(self.base + "/health", timeout=30).json()["busy_s"])

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except Exception:  # noqa: BLE001
            self.proc.kill()


def run_tiny(k: int | None, *, steps: int, out: Path, model_path: Path, groups: int, group_size: int,
             server: Served | None) -> Row:
    from traject.environments.users.scripted import ScriptedUser
    from traject.rewards.base import Reward
    from traject.trainers.config import config_from_dict
    from traject.trainers.local import LocalTrainer
    from traject.types import RewardResult

    class Digits(Reward):
        """The share of digits in what the model wrote: varies within a group, so every step trains."""

        name = "digits"

        async def score(self, traj, task):  # type: ignore[no-untyped-def]
            text = "".join(m.text for m in traj.messages if m.role == "assistant")
            return RewardResult(total=sum(c.isdigit() for c in text) / max(len(text), 1))

    def env() -> ToolEnv:
        return ToolEnv([], name="chat", max_turns=3, user=ScriptedUser(["Go on.", "And then?"]), reward=Digits())

    rollout: dict[str, object] = {"group_size": group_size, "tasks_per_step": groups, "max_new_tokens": 24,
                                  "concurrency": 256}
    if server is not None:
        rollout["server_url"] = server.base + "/v1"
    if k is not None:
        rollout.update(mode="async", max_off_policy_steps=k)
    cfg = config_from_dict({
        "model": {"path": str(model_path)}, "rollout": rollout,
        "algorithm": {"advantage": "grpo", "tis_cap": 2.0}, "optim": {"lr": 1e-3},
        "eval": {"tasks": {}}, "trainer": {"steps": steps, "seed": 0, "out_dir": str(out), "resume": False},
    })
    tasks = [Task(id=f"t{i}", prompt=f"Tell me a story ({i}).") for i in range(64)]
    trainer = LocalTrainer(cfg, env_factory=env, train_tasks=tasks, eval_tasks=[], log_fn=lambda msg: None)
    ends: list[float] = []
    busy: list[float] = []

    def on_log(msg: str) -> None:
        if msg.startswith("step "):
            ends.append(time.perf_counter())
            busy.append(server.busy_s() if server is not None else trainer.policy.busy_s)

    trainer.log = on_log
    t0 = time.perf_counter()
    trainer.run()
    records = [json.loads(line) for line in open(out / "metrics.jsonl")]
    steps_m = [r for r in records if "reward/mean" in r]
    stale = [r.get("offpolicy/staleness_mean", 0.0) for r in steps_m]
    return Row("(b) tiny model, traject serve" if server is not None else "(b) tiny model, in-process", "sync" if k is None else "async", k or 0, steps,
               ends[-1] - ends[0], busy[-1] - busy[0], ends[-1] - t0, sum(stale) / len(stale),
               int(sum(r.get("offpolicy/stale_requeued_groups", 0) for r in steps_m)),
               int(sum(r.get("offpolicy/stale_dropped_groups", 0) for r in steps_m)),
               int(sum(r["episodes"] for r in steps_m)),
               {"update_s_mean": sum(r["time/update_s"] for r in steps_m[1:]) / max(len(steps_m) - 1, 1)})


# --- the run ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run of about a minute")
    parser.add_argument("--json", default="benchmarks/results/async_rl.json")
    parser.add_argument("--steps", type=int, default=None, help="trainer steps per variant (default 10; quick 4)")
    parser.add_argument("--train-s", type=float, default=None, help="(a) the simulated trainer step, seconds")
    parser.add_argument("--push-s", type=float, default=0.2, help="(a) engine pause per weight push, seconds")
    parser.add_argument("--groups", type=int, default=None, help="(a) groups (tasks) per step (default 8; quick 4)")
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--skip-tiny", action="store_true", help="only workload (a)")
    parser.add_argument("--tiny-in-process", action="store_true", help="(b) sample in-process, not through traject serve")
    parser.add_argument("--no-priority", action="store_true")
    args = parser.parse_args()
    raised = "unchanged" if args.no_priority else raise_priority()
    quick = args.quick
    steps = args.steps or (4 if quick else 10)
    groups = args.groups or (4 if quick else 8)
    w = Workload(turns=3, tool_median_s=0.1 if quick else 0.25, tool_max_s=2.0 if quick else 6.0)
    train_s = args.train_s if args.train_s is not None else (1.0 if quick else 3.0)
    rows: list[Row] = []
    load_before = os.getloadavg()[0]
    sim = Sim()
    try:
        for mode, k in VARIANTS:
            rows.append(anyio.run(lambda: run_sim(sim, w, k=k, steps=steps, groups=groups,  # noqa: B023
                                                   group_size=args.group_size, train_s=train_s,
                                                   push_s=args.push_s)))
            print(json.dumps(rows[-1].as_dict()), flush=True)
    finally:
        sim.close()
    if not args.skip_tiny:
        from traject.agents.hf import build_tiny_model

        with tempfile.TemporaryDirectory() as tmp:
            model_path = build_tiny_model(Path(tmp) / "tiny")
            tiny_steps = 4 if quick else 8
            tiny_groups = 2 if quick else 4
            served = None if args.tiny_in_process else Served(model_path, max_batch_size=3 * tiny_groups * 4)
            try:
                for mode, k in VARIANTS:
                    rows.append(run_tiny(None if mode == "sync" else k, steps=tiny_steps,
                                         out=Path(tmp) / f"run-{mode}-{k}", model_path=model_path, groups=tiny_groups,
                                         group_size=4, server=served))
                    print(json.dumps(rows[-1].as_dict()), flush=True)
            finally:
                if served is not None:
                    served.close()
    sync = {r.workload: r for r in rows if r.variant == "sync"}
    for r in rows:
        r.extra["speedup_vs_sync"] = r.steps_per_s / sync[r.workload].steps_per_s
    sim_rows = [r for r in rows if r.workload.startswith("(a)")]
    best = max((r for r in sim_rows if r.variant == "async" and r.max_off_policy_steps <= 2),
               key=lambda r: r.steps_per_s)
    speedup = best.steps_per_s / sync[sim_rows[0].workload].steps_per_s
    host = {"priority": raised, "load_avg_before": load_before, "load_avg_after": os.getloadavg()[0],
            "cpus": os.cpu_count()}
    settings = {"quick": quick, "steps": steps, "groups_per_step": groups, "group_size": args.group_size,
                "train_s": train_s, "push_s": args.push_s, "workload": w.to_dict()}
    report(rows, speedup, best, args.json, settings, host)


def report(rows: list[Row], speedup: float, best: Row, path: str, settings: dict[str, object],
           host: dict[str, object]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="end-to-end RL steps/s: sync vs async off-policy (same OffPolicyRollouts code)")
    for col in ("workload", "variant", "max off-policy", "steps", "steps/s", "vs sync", "model busy",
                "staleness mean", "stale requeued", "episodes"):
        table.add_column(col, justify="left" if col in ("workload", "variant") else "right")
    for r in rows:
        table.add_row(r.workload, r.variant, str(r.max_off_policy_steps), str(r.steps), f"{r.steps_per_s:.3f}",
                      f"{r.extra['speedup_vs_sync']:.2f}x", f"{r.busy_fraction:.2f}", f"{r.staleness_mean:.2f}",
                      str(r.stale_requeued), str(r.episodes))
    Console(width=160).print(table)
    print(f"speedup (a), async at staleness <= 2 (best: {best.max_off_policy_steps}) over sync: {speedup:.2f}x")
    print(f"settings: {json.dumps(settings)}")
    print(f"host: {json.dumps(host)}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({"speedup": speedup, "speedup_staleness": best.max_off_policy_steps,
                                      "settings": settings, "host": host, "rows": [r.as_dict() for r in rows]},
                                     indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
