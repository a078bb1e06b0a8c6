"""An OpenAI-compatible chat server whose latency follows the workload's engine model.

A small asyncio HTTP/1.1 server (keep-alive, one write per response), so that a thousand
concurrent requests cost it little CPU: it stands in for an inference engine, and must not be
the bottleneck it is meant to model. Requests join a continuously batched engine
(``workload.Engine``) stepped in real time against absolute deadlines, so sleep overshoot does
not accumulate. Each request names its episode in its first system or user message that says
"episode N"; its turn is the number of assistant messages so far. Turns before the last answer
with a ``work`` tool call, the last with ``submit``.

Control: ``POST /sim/workload`` (a Workload as JSON: resets the engine and its counters),
``GET /sim/stats`` (engine busy seconds, steps, mean batch, requests, lag, weights version),
``POST /sim/weights`` (``{"version": v, "pause_s": s}``: a weight update; the engine pauses
for ``s`` seconds, as an engine loading new weights does, then serves ``v``; answers when done).

    python benchmarks/sim_server.py [--port 0]    # prints "PORT <n>" when listening
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from workload import Engine, Sequence, Workload, new_sequence  # noqa: E402

_EPISODE = re.compile(rb"episode (\d+)")


class SimServer:
    def __init__(self, workload: Workload) -> None:
        self.set_workload(workload)
        self._wake = asyncio.Event()

    def set_workload(self, workload: Workload) -> None:
        self.workload = workload
        self.engine = Engine(workload)
        self.requests = 0
        self.lag_s = 0.0
        self.in_engine_s = 0.0
        self.idle_s = 0.0
        self.started = time.monotonic()
        self.version = 0
        self.paused_until = 0.0
        self.paused_s = 0.0

    def stats(self) -> dict[str, float]:
        e = self.engine
        return {"busy_s": e.busy_s, "steps": e.steps, "tokens": e.tokens, "mean_batch": e.mean_batch,
                "requests": self.requests, "lag_s": self.lag_s,
                "in_engine_s": self.in_engine_s, "idle_s": self.idle_s, "since_s": time.monotonic() - self.started,
                "version": self.version, "paused_s": self.paused_s}

    async def engine_loop(self) -> None:
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while True:
            pause = self.paused_until - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)
                deadline = None
                continue
            engine = self.engine
            duration = engine.begin_step()
            if duration is None:
                self._wake.clear()
                t_idle = time.perf_counter()
                await self._wake.wait()
                self.idle_s += time.perf_counter() - t_idle
                deadline = None
                continue
            now = loop.time()
            if deadline is None:
                deadline = now
            elif now - deadline > 0.02:
                # This process fell behind (CPU starved): resynchronise, and count the lost time.
                self.lag_s += now - deadline
                deadline = now
            deadline += duration
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            if engine is not self.engine:
                continue  # the workload was replaced mid-step
            for seq in engine.end_step(duration):
                fut: asyncio.Future[None] = seq.payload
                if not fut.done():
                    fut.set_result(None)

    async def complete(self, body: bytes) -> bytes:
        self.requests += 1
        req = json.loads(body)
        messages = req.get("messages", [])
        episode = 0
        for msg in messages:
            if msg.get("role") not in ("system", "user"):
                continue
            content = msg.get("content") or ""
            m = _EPISODE.search(content.encode() if isinstance(content, str) else json.dumps(content).encode())
            if m:
                episode = int(m.group(1))
                break
        turn = sum(1 for m in messages if m.get("role") == "assistant")
        w = self.workload
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        seq: Sequence = new_sequence(w, episode, turn, fut)
        t_in = time.perf_counter()
        self.engine.submit(seq)
        self._wake.set()
        await fut
        self.in_engine_s += time.perf_counter() - t_in
        last = turn + 1 >= w.turns
        call = {"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
                "function": {"name": "submit" if last else "work",
                             "arguments": '{"answer": 1}' if last else "{}"}}
        prompt = w.prompt_tokens_at(episode, turn)
        completion = w.out_tokens(episode, turn)
        return json.dumps({
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
            "model": req.get("model", "sim"),
            "choices": [{"index": 0, "finish_reason": "tool_calls",
                         "message": {"role": "assistant", "content": "", "tool_calls": [call]}}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion},
        }).encode()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, _, rest = head.partition(b"\r\n")
                method, path, _ = request_line.split(b" ", 2)
                length = 0
                for line in rest.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                body = await reader.readexactly(length) if length else b""
                status, payload = await self.route(method, path, body)
                writer.write(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (status, b"OK" if status == 200 else b"Error", len(payload), payload))
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def route(self, method: bytes, path: bytes, body: bytes) -> tuple[int, bytes]:
        if method == b"POST" and path.endswith(b"/chat/completions"):
            return 200, await self.complete(body)
        if method == b"GET" and path == b"/sim/stats":
            return 200, json.dumps(self.stats()).encode()
        if method == b"POST" and path == b"/sim/workload":
            self.set_workload(Workload(**json.loads(body)))
            return 200, b"{}"
        if method == b"POST" and path == b"/sim/weights":
            update = json.loads(body)
            pause = float(update.get("pause_s", 0.0))
            loop = asyncio.get_running_loop()
            self.paused_until = max(self.paused_until, loop.time() + pause)
            self.paused_s += pause
            await asyncio.sleep(max(0.0, self.paused_until - loop.time()))
            self.version = int(update["version"])
            return 200, json.dumps({"version": self.version}).encode()
        if method == b"GET" and path.endswith(b"/models"):
            return 200, b'{"object": "list", "data": [{"id": "sim", "object": "model"}]}'
        return 404, b'{"error": {"message": "not found"}}'


def _exit_with_parent() -> None:
    """The benchmark holds our stdin: when it ends (or is killed), stdin closes and so do we."""
    import os
    import threading

    def watch() -> None:
        sys.stdin.buffer.read()
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


async def serve(port: int) -> None:
    if not sys.stdin.isatty():
        _exit_with_parent()
    sim = SimServer(Workload())
    server = await asyncio.start_server(sim.handle, "127.0.0.1", port, backlog=4096)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    engine = asyncio.create_task(sim.engine_loop())
    async with server:
        await server.serve_forever()
    engine.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(serve(parser.parse_args().port))
