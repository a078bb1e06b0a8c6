"""A real HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions API with scripted
answers. Tests point real clients (the openai SDK, httpx) at it: nothing is mocked.

From a shell, a stand-in for ``vllm serve`` (the README's first example runs against it)::

    python -m traject.testing.openai_server --port 8000
    # serving http://127.0.0.1:8000/v1 (model 'scripted', responder traject.environments.builtin.lookup:chat_responder)

By default it plays the ``lookup`` oracle (look up each item, then ``submit`` the total);
``--responder MODULE:FACTORY`` names another (``FACTORY()`` returns a function of a
ChatRequest), ``--reply TEXT`` (repeatable) replays fixed answers in order.

>>> with ScriptedChatServer(["hello"]) as server:
...     import httpx
...     r = httpx.post(server.url + "/chat/completions",
...                    json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
...     r.json()["choices"][0]["message"]["content"]
'hello'
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class ScriptedReply:
    """One scripted answer. ``tool_calls`` are (name, arguments) pairs, arguments a dict or a
    raw string (to script malformed JSON). ``status`` other than 200 answers with an error
    body; ``raw_body`` answers with exactly those bytes."""

    content: str | None = ""
    tool_calls: Sequence[tuple[str, dict[str, Any] | str]] = ()
    status: int = 200
    delay_s: float = 0.0
    finish_reason: str | None = None
    raw_body: bytes | None = None
    prompt_tokens: int = 10
    completion_tokens: int | None = None


@dataclass
class ChatRequest:
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", [])

    @property
    def last_user_text(self) -> str:
        for m in reversed(self.messages):
            if m.get("role") == "user":
                c = m.get("content")
                return c if isinstance(c, str) else " ".join(p.get("text", "") for p in c or [])
        return ""


Responder = Callable[[ChatRequest], "ScriptedReply | str"]


@dataclass
class _State:
    responder: Responder
    requests: list[ChatRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _as_responder(script: Responder | Sequence[ScriptedReply | str]) -> Responder:
    if callable(script):
        return script
    items = list(script)
    cursor = iter(range(len(items)))

    def next_reply(_: ChatRequest) -> ScriptedReply | str:
        try:
            return items[next(cursor)]
        except StopIteration:
            return ScriptedReply(status=500, content="script exhausted")

    return next_reply


class _Server(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: a burst of concurrent clients (a rollout group,
    # a judge's concurrent calls) overflows it and the dropped SYNs wait ~1 s to be retried.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up before its answer (a test of client timeouts) is not an error
        # of the server. Printing the traceback would also run the traceback module's
        # ast.parse in this thread, which on CPython 3.11.7 can race with an ast.parse in the
        # main thread (pytest's assertion rewriting) and raise "AST constructor recursion
        # depth mismatch".
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class ScriptedChatServer:
    """``responder`` maps each request to a reply; a list is replayed in order (then 500s)."""

    def __init__(self, script: Responder | Sequence[ScriptedReply | str], *, model: str = "scripted",
                 port: int = 0, host: str = "127.0.0.1") -> None:
        self.state = _State(_as_responder(script))
        self.model = model
        state = self.state
        model_name = model

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle's algorithm on, the body waits
            # for the client's delayed ACK of the headers (~40 ms per request on Linux).
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                return None

            def _send(self, status: int, payload: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    # The client gave up (its timeout, a cancelled episode): nothing to answer.
                    self.close_connection = True

            def do_GET(self) -> None:  # noqa: N802
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, json.dumps({"object": "list", "data": [{"id": model_name, "object": "model"}]}).encode())
                else:
                    self._send(404, b'{"error": {"message": "not found"}}')

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, b'{"error": {"message": "not found"}}')
                    return
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    self._send(400, b'{"error": {"message": "body is not JSON"}}')
                    return
                req = ChatRequest(body)
                with state.lock:
                    state.requests.append(req)
                    reply = state.responder(req)
                if isinstance(reply, str):
                    reply = ScriptedReply(content=reply)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.raw_body is not None:
                    self._send(reply.status, reply.raw_body)
                    return
                if reply.status != 200:
                    err = {"error": {"message": reply.content or "scripted error", "type": "server_error"}}
                    self._send(reply.status, json.dumps(err).encode())
                    return
                self._send(200, json.dumps(_completion(reply, body, model_name)).encode())

        self._server = _Server((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """The base URL, as the openai client's ``base_url`` wants it."""
        return f"http://{self._server.server_address[0]}:{self.port}/v1"

    @property
    def requests(self) -> list[ChatRequest]:
        with self.state.lock:
            return list(self.state.requests)

    def start(self) -> ScriptedChatServer:
        # stop() waits for the serve loop's next poll: poll often, so tests do not idle 0.5 s each.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="scripted-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ScriptedChatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _completion(reply: ScriptedReply, body: dict[str, Any], model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
             "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}}
            for name, args in reply.tool_calls
        ]
    completion_tokens = reply.completion_tokens
    if completion_tokens is None:
        completion_tokens = max(1, len((reply.content or "").split()))
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", model),
        "choices": [{"index": 0, "message": message,
                     "finish_reason": reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")}],
        "usage": {"prompt_tokens": reply.prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": reply.prompt_tokens + completion_tokens},
    }


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import importlib

    ap = argparse.ArgumentParser(prog="python -m traject.testing.openai_server",
                                 description="A scripted OpenAI-compatible chat server on 127.0.0.1.")
    ap.add_argument("--port", type=int, default=8000, help="port to listen on, 0 for any free one (default 8000)")
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    ap.add_argument("--model", default="scripted", help="model name to report (default scripted)")
    ap.add_argument("--responder", default="traject.environments.builtin.lookup:chat_responder",
                    help="MODULE:FACTORY; FACTORY() returns a function ChatRequest -> reply "
                         "(default: the lookup oracle)")
    ap.add_argument("--reply", action="append", default=[],
                    help="a fixed answer, replayed in order (repeatable; overrides --responder)")
    args = ap.parse_args(argv)
    if args.reply:
        script: Responder | Sequence[ScriptedReply | str] = list(args.reply)
        what = f"{len(args.reply)} fixed repl{'y' if len(args.reply) == 1 else 'ies'}"
    else:
        module, _, attr = args.responder.partition(":")
        try:
            script = getattr(importlib.import_module(module), attr)()
        except (ImportError, AttributeError, ValueError) as exc:
            print(f"error: --responder {args.responder}: {exc}", file=sys.stderr)
            return 2
        what = f"responder {args.responder}"
    try:
        server = ScriptedChatServer(script, model=args.model, port=args.port, host=args.host)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}; pick another --port",
              file=sys.stderr)
        return 2
    print(f"serving {server.url} (model {args.model!r}, {what}); Ctrl-C stops", flush=True)
    try:
        server._server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server._server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
