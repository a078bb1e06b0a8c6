"""Hot paths of the conversational envs, each measured against its alternative in the same run.

* ``sql_event_loop``: K concurrent episodes each run M slow queries. The env's way (each call
  in a worker thread, one read-only connection per episode) against calling sqlite inline on
  the event loop. Reported: wall time, and the event loop's worst stall (how late a 5 ms ticker
  woke up), which is what every other episode on that loop waits.
* ``sql_guard_overhead``: a cheap query through ``ReadOnlyDatabase`` (thread hop, authorizer,
  progress handler, row cap) against a bare connection, per call.
* ``search_index``: building the BM25 index of an N-document corpus against loading the cached
  index (the in-process cache cleared, as in a new process); and the query latency.
* ``user_replay``: an LLMUser episode of T turns against a simulator endpoint with a fixed
  latency, live against replayed from the (conversation, seed) cache.
* ``simulator_client``: making a simulator's HTTP client (one per episode) with the shared TLS
  context against the default client.
* ``domain_tools``: building a customer-service episode's tools with the per-class analysis
  cache against analysing every method afresh; and the per-step database hash.

    python benchmarks/conversational_envs.py [--episodes 8] [--queries 3] [--docs 20000] [--turns 6]
                                             [--latency 0.02] [--out runs/bench_conversational_envs.json]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from traject.environments.customer_service import DomainState, load_domain  # noqa: E402
from traject.environments.customer_service import toolkit as toolkit_module  # noqa: E402
from traject.environments.customer_service.tasks import BUILTIN_DOMAIN  # noqa: E402
from traject.environments.search import corpus as corpus_module  # noqa: E402
from traject.environments.sql import ReadOnlyDatabase  # noqa: E402
from traject.environments.sql.builtin import builtin_database  # noqa: E402
from traject.environments.users import LLMUser, ResponseCache, SimulatorLLM, SimulatorLLMConfig  # noqa: E402
from traject.episode import EpisodeInfo, reset_episode, set_episode  # noqa: E402
from traject.rewards.verifiers.db_state import state_hash  # noqa: E402
from traject.testing import ScriptedChatServer, ScriptedReply  # noqa: E402
from traject.types import Message, Task  # noqa: E402

SLOW_SQL = ("WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < {n}) "
            "SELECT count(*), sum(n % 7) FROM c")


async def _with_ticker(work) -> tuple[float, float]:
    """Run ``work()``; return (wall seconds, the worst lateness of a 5 ms ticker)."""
    worst = 0.0
    done = anyio.Event()

    async def ticker():
        nonlocal worst
        while not done.is_set():
            t = time.perf_counter()
            await anyio.sleep(0.005)
            worst = max(worst, time.perf_counter() - t - 0.005)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await anyio.sleep(0.02)
        t0 = time.perf_counter()
        await work()
        wall = time.perf_counter() - t0
        done.set()
    return wall, worst


async def bench_sql(episodes: int, queries: int) -> list[dict]:
    db_path = builtin_database()
    # size the query to take roughly 60 ms here
    n = 100_000
    conn = sqlite3.connect(db_path)
    t = time.perf_counter()
    conn.execute(SLOW_SQL.format(n=n)).fetchall()
    n = int(n * 0.06 / max(time.perf_counter() - t, 1e-3))
    sql = SLOW_SQL.format(n=n)

    async def threaded():
        async def episode():
            db = ReadOnlyDatabase(db_path, timeout_s=30)
            try:
                for _ in range(queries):
                    await db.execute(sql)
            finally:
                await db.aclose()

        async with anyio.create_task_group() as tg:
            for _ in range(episodes):
                tg.start_soon(episode)

    async def inline():
        async def episode():
            c = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
            try:
                for _ in range(queries):
                    c.execute(sql).fetchall()
                    await anyio.sleep(0)
            finally:
                c.close()

        async with anyio.create_task_group() as tg:
            for _ in range(episodes):
                tg.start_soon(episode)

    wall_t, stall_t = await _with_ticker(threaded)
    wall_i, stall_i = await _with_ticker(inline)
    rows = [
        {"bench": "sql_event_loop", "metric": f"wall s ({episodes} episodes x {queries} queries)",
         "env": round(wall_t, 3), "alternative": round(wall_i, 3), "alternative_is": "inline sqlite on the loop",
         "ratio": round(wall_i / wall_t, 2)},
        {"bench": "sql_event_loop", "metric": "worst event-loop stall ms", "env": round(stall_t * 1000, 1),
         "alternative": round(stall_i * 1000, 1), "alternative_is": "inline sqlite on the loop",
         "ratio": round(stall_i / max(stall_t, 1e-6), 1)},
    ]
    # per-call overhead of the guarded connection on a cheap query
    cheap = "SELECT name, price FROM products WHERE id = 3"
    db = ReadOnlyDatabase(db_path)
    bare = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    reps = 400
    t = time.perf_counter()
    for _ in range(reps):
        await db.execute(cheap)
    guarded = (time.perf_counter() - t) / reps
    t = time.perf_counter()
    for _ in range(reps):
        bare.execute(cheap).fetchall()
    plain = (time.perf_counter() - t) / reps
    await db.aclose()
    bare.close()
    rows.append({"bench": "sql_guard_overhead", "metric": "µs per cheap query", "env": round(guarded * 1e6, 1),
                 "alternative": round(plain * 1e6, 1), "alternative_is": "bare connection, no thread",
                 "ratio": round(plain / guarded, 3)})
    return rows


def bench_search(docs: int) -> list[dict]:
    words = ("river lake town founder instrument opera composer province capital mountain railway village "
             "academy rector novel bridge harbour salt clock locomotive").split()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.jsonl"
        with path.open("w") as f:
            for i in range(docs):
                text = " ".join(words[(i * 7 + j * 3) % len(words)] + str((i + j) % 97) for j in range(40))
                f.write(json.dumps({"id": f"d{i}", "title": f"Doc {i}", "text": text}) + "\n")
        corpus_module._indexes.clear()
        t = time.perf_counter()
        index = corpus_module.get_index(path)
        build = time.perf_counter() - t
        corpus_module._indexes.clear()
        t = time.perf_counter()
        index = corpus_module.get_index(path)
        load = time.perf_counter() - t
        lat = []
        for i in range(100):
            t = time.perf_counter()
            index.search(f"{words[i % len(words)]}{i % 97} founder river", k=5)
            lat.append(time.perf_counter() - t)
        corpus_module._indexes.clear()
    return [
        {"bench": "search_index", "metric": f"s to get the index ({docs} docs)", "env": round(load, 3),
         "alternative": round(build, 3), "alternative_is": "build (no cache)", "ratio": round(build / load, 1)},
        {"bench": "search_index", "metric": "query ms p50 (k=5)", "env": round(statistics.median(lat) * 1000, 2),
         "alternative": None, "alternative_is": "", "ratio": None},
    ]


async def bench_user(turns: int, latency: float) -> list[dict]:
    scenario = {"instructions": {"reason_for_call": "You want a refund for order W1."}}
    task = Task(id="bench", data={"user_scenario": scenario})

    def responder(req):
        return ScriptedReply(content=f"user turn {len(req.messages)}", delay_s=latency)

    with ScriptedChatServer(responder) as server:
        cache = ResponseCache()

        async def episode() -> float:
            llm = SimulatorLLM(SimulatorLLMConfig(base_url=server.url), cache=cache)
            user = LLMUser(llm)
            token = set_episode(EpisodeInfo("ep", "bench", 0, 1234))
            t = time.perf_counter()
            try:
                opening = await user.reset(task)
                convo = [opening]
                for k in range(turns - 1):
                    convo.append(Message.assistant(f"agent turn {k}"))
                    convo.append((await user.respond(convo)).message)
                return time.perf_counter() - t
            finally:
                reset_episode(token)
                await user.aclose()

        await episode()  # warm the client machinery (imports, first connection)
        cache.clear()
        before = len(server.requests)
        live = await episode()
        live_requests = len(server.requests) - before
        before = len(server.requests)
        replay = await episode()
        replay_requests = len(server.requests) - before
    rows = [{"bench": "user_replay", "metric": f"s per {turns}-turn user episode ({latency * 1000:.0f} ms endpoint)",
             "env": round(replay, 4), "alternative": round(live, 4), "alternative_is": "live endpoint",
             "ratio": round(live / replay, 1)},
            {"bench": "user_replay", "metric": "endpoint requests", "env": replay_requests,
             "alternative": live_requests, "alternative_is": "live endpoint", "ratio": None}]
    # client construction: a simulator opens a transport per episode; its TLS context is shared
    import ssl

    from traject.agents.transport import Transport

    reps = 20
    t = time.perf_counter()
    for _ in range(reps):
        ssl.create_default_context()  # what a client with its own TLS context pays on top
        await Transport("https://127.0.0.1:9/v1").aclose()
    default = (time.perf_counter() - t) / reps
    t = time.perf_counter()
    for _ in range(reps):
        await Transport("https://127.0.0.1:9/v1").aclose()
    shared = (time.perf_counter() - t) / reps
    rows.append({"bench": "simulator_client", "metric": "ms per client (one per episode)", "env": round(shared * 1000, 2),
                 "alternative": round(default * 1000, 2), "alternative_is": "client with its own TLS context",
                 "ratio": round(default / shared, 1)})
    return rows


def bench_domain() -> list[dict]:
    domain = load_domain(BUILTIN_DOMAIN)
    reps = 30
    DomainState(domain).agent_tools()  # warm
    t = time.perf_counter()
    for _ in range(reps):
        DomainState(domain).agent_tools()
    cached = (time.perf_counter() - t) / reps
    t = time.perf_counter()
    for _ in range(reps):
        toolkit_module._analysed.clear()
        DomainState(domain).agent_tools()
    fresh = (time.perf_counter() - t) / reps
    state = DomainState(domain)
    t = time.perf_counter()
    for _ in range(200):
        state_hash(state.snapshot())
    per_hash = (time.perf_counter() - t) / 200
    return [
        {"bench": "domain_tools", "metric": "ms to build an episode's tools", "env": round(cached * 1000, 2),
         "alternative": round(fresh * 1000, 2), "alternative_is": "analyse each method afresh",
         "ratio": round(fresh / cached, 1)},
        {"bench": "domain_tools", "metric": "ms per step for the db hash (shop)", "env": round(per_hash * 1000, 3),
         "alternative": None, "alternative_is": "", "ratio": None},
    ]


def table(rows: list[dict]) -> str:
    head = f"{'bench':<20} {'metric':<50} {'env':>10} {'alternative':>12} {'ratio':>7}  alternative is"
    lines = [head, "-" * len(head)]
    for r in rows:
        alt = "" if r["alternative"] is None else r["alternative"]
        ratio = "" if r["ratio"] is None else r["ratio"]
        lines.append(f"{r['bench']:<20} {r['metric']:<50} {r['env']:>10} {alt!s:>12} {ratio!s:>7}  {r['alternative_is']}")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> list[dict]:
    rows = await bench_sql(args.episodes, args.queries)
    rows += bench_search(args.docs)
    rows += await bench_user(args.turns, args.latency)
    rows += bench_domain()
    return rows


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=8)
    p.add_argument("--queries", type=int, default=3)
    p.add_argument("--docs", type=int, default=20_000)
    p.add_argument("--turns", type=int, default=6)
    p.add_argument("--latency", type=float, default=0.02)
    p.add_argument("--out", type=Path, default=Path("runs/bench_conversational_envs.json"))
    args = p.parse_args()
    rows = anyio.run(main, args)
    print(table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "conversational_envs", "args": {k: str(v) for k, v in vars(args).items()},
                                    "rows": rows}, indent=2))
    print(f"\nwrote {args.out}")
