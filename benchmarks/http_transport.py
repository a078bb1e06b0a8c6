"""Which HTTP client should carry traject's OpenAI-compatible requests? The lean client
(traject.agents.lean_http), httpx, and the openai SDK, side by side in one run.

    PYTHONPATH=. python benchmarks/http_transport.py [--quick] [--json out.json]

Each client sends the same chat-completion request (a 20-message conversation, as an episode a
few turns in sends) ``requests`` times with ``concurrency`` in flight, to one local server in a
separate process that answers at once with a fixed completion (keep-alive, one write per
answer), so the client's own cost dominates. Measured in the client process: CPU seconds per
request (``time.process_time``), wall time, requests per second, and failures. Clients take
turns, ``rounds`` times each; the table shows the median round. At 1000 concurrent episodes
the client's CPU per request is what decides whether the event loop keeps up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import anyio

ANSWER = json.dumps({
    "id": "c1", "object": "chat.completion", "created": 0, "model": "m",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "",
        "tool_calls": [{"id": "call_1", "type": "function",
                        "function": {"name": "work", "arguments": "{\"x\": 1}"}}]}}],
    "usage": {"prompt_tokens": 900, "completion_tokens": 20, "total_tokens": 920},
}).encode()


async def _serve() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(ANSWER)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await reader.readuntil(b"\r\n\r\n")
                n = 0
                for line in header.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        n = int(line.split(b":", 1)[1])
                await reader.readexactly(n)
                writer.write(head + ANSWER)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


def _body() -> dict:
    messages = [{"role": "system", "content": "You are a helpful agent. " * 20}]
    for i in range(19):
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " + "word " * 60})
    return {"model": "m", "messages": messages, "temperature": 1.0, "max_tokens": 256}


async def _drive(send, requests: int, concurrency: int) -> tuple[float, float, int]:
    failures = 0
    left = requests

    async def worker() -> None:
        nonlocal left, failures
        while left > 0:
            left -= 1
            try:
                await send()
            except Exception:  # noqa: BLE001 - counted
                failures += 1

    cpu0, t0 = time.process_time(), time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    return time.process_time() - cpu0, time.perf_counter() - t0, failures


async def _one(kind: str, url: str, requests: int, concurrency: int) -> dict:
    body = _body()
    if kind == "lean":
        from traject.agents.lean_http import LeanHTTPClient

        client = LeanHTTPClient(url, timeout_s=60)

        async def send() -> None:
            resp = await client.post_json("/chat/completions", body)
            assert resp["choices"][0]["message"]["tool_calls"]
        close = client.aclose
    elif kind == "httpx":
        import httpx

        client = httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(
            max_connections=concurrency, max_keepalive_connections=concurrency))

        async def send() -> None:
            r = await client.post("/chat/completions", json=body)
            r.raise_for_status()
            assert r.json()["choices"][0]["message"]["tool_calls"]
        close = client.aclose
    else:
        import httpx
        import openai

        client = openai.AsyncOpenAI(base_url=url, api_key="EMPTY", max_retries=0, timeout=60,
                                    http_client=openai.DefaultAsyncHttpxClient(limits=httpx.Limits(
                                        max_connections=concurrency, max_keepalive_connections=concurrency)))

        async def send() -> None:
            resp = await client.chat.completions.create(**body)
            assert resp.choices[0].message.tool_calls
        close = client.close
    await _drive(send, min(concurrency, requests), concurrency)  # warm up: connections, imports
    cpu, wall, failures = await _drive(send, requests, concurrency)
    await close()
    return {"cpu_ms_per_request": 1000 * cpu / requests, "wall_s": wall, "requests_per_s": requests / wall,
            "failures": failures}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--requests", type=int, default=None)
    ap.add_argument("--concurrency", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--json", default=str(Path(__file__).parent / "results" / "http_transport.json"))
    args = ap.parse_args()
    if args.serve:
        asyncio.run(_serve())
        return
    requests, concurrency, rounds = (1000, 200, 3) if args.quick else (4000, 1000, 3)
    requests = args.requests or requests
    concurrency = args.concurrency or concurrency
    rounds = args.rounds or rounds
    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline().split()[1])
        url = f"http://127.0.0.1:{port}/v1"
        kinds = ["lean", "httpx", "sdk"]
        runs: dict[str, list[dict]] = {k: [] for k in kinds}
        for _ in range(rounds):
            for k in kinds:
                runs[k].append(anyio.run(_one, k, url, requests, concurrency))
                print(f"  {k}: {runs[k][-1]['cpu_ms_per_request']:.3f} CPU ms/request, "
                      f"{runs[k][-1]['wall_s']:.1f} s", file=sys.stderr, flush=True)
    finally:
        server.kill()
    rows = {}
    for k, rs in runs.items():
        med = sorted(rs, key=lambda r: r["cpu_ms_per_request"])[len(rs) // 2]
        rows[k] = {**med, "cpu_ms_per_request_rounds": [r["cpu_ms_per_request"] for r in rs]}
    base = rows["lean"]["cpu_ms_per_request"]
    print(f"{requests} requests, {concurrency} in flight, median of {rounds} rounds "
          f"(load avg {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs)")
    print(f"{'client':<8}{'CPU ms/req':>12}{'x lean':>8}{'req/s':>9}{'wall s':>8}{'failures':>10}")
    for k, r in rows.items():
        print(f"{k:<8}{r['cpu_ms_per_request']:>12.3f}{r['cpu_ms_per_request'] / base:>8.2f}"
              f"{r['requests_per_s']:>9.0f}{r['wall_s']:>8.2f}{r['failures']:>10}")
    out = {"requests": requests, "concurrency": concurrency, "rounds": rounds,
           "host": {"load_avg": os.getloadavg()[0], "cpus": os.cpu_count()},
           "rows": rows, "median_cpu_ms": statistics.median(r["cpu_ms_per_request"] for r in rows.values())}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
