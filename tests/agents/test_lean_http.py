"""OpenAIPolicy's lean HTTP transport, against real servers on 127.0.0.1: the same requests and
answers as the SDK transport, and the same failure handling."""

from __future__ import annotations

import json

import anyio
import pytest

from traject.agents.lean_http import LeanHTTPClient, LeanHTTPError
from traject.agents.openai_policy import OpenAIPolicy
from traject.agents.policy import PolicyError
from traject.testing import ScriptedReply
from traject.types import Message, ToolCall, ToolSchema

TOOLS = [ToolSchema(name="lookup", description="Look up.", parameters={"type": "object", "properties": {"item": {"type": "string"}}})]
CONVO = [Message.system("sys"), Message.user("How much?"),
         Message.assistant("", tool_calls=[ToolCall(id="call_1", name="lookup", arguments={"item": "pear"})]),
         Message.tool("3", tool_call_id="call_1", name="lookup")]


def _policy(url: str, transport: str, **kw) -> OpenAIPolicy:
    return OpenAIPolicy(model="m", base_url=url, transport=transport, backoff_s=0.01, **kw)


@pytest.mark.anyio
async def test_lean_and_sdk_send_the_same_request_and_read_the_same_answer(chat_server):
    replies = [ScriptedReply(content="thinking", tool_calls=[("lookup", {"item": "fig"}), ("lookup", '{"item": ')],
                             prompt_tokens=31, completion_tokens=7)] * 2
    server = chat_server(replies)
    outs = {}
    for transport in ("sdk", "lean"):
        policy = _policy(server.url, transport, extra_body={"top_k": 5})
        assert (policy.lean is None) == (transport == "sdk")
        outs[transport] = await policy.act(CONVO, TOOLS)
        await policy.aclose()
    sdk_body, lean_body = (r.body for r in server.requests)
    assert lean_body == sdk_body
    assert lean_body["top_k"] == 5 and lean_body["tools"][0]["function"]["name"] == "lookup"
    a, b = outs["sdk"], outs["lean"]
    assert (a.prompt_tokens, a.completion_tokens) == (b.prompt_tokens, b.completion_tokens) == (31, 7)
    strip = lambda calls: [(c.name, c.arguments, c.error is not None, c.raw) for c in calls]  # noqa: E731
    assert strip(a.message.tool_calls) == strip(b.message.tool_calls)
    assert b.message.text == "thinking" and b.message.tool_calls[1].error is not None


@pytest.mark.anyio
async def test_lean_retries_5xx_then_succeeds_and_gives_up_on_4xx_and_garbage(chat_server):
    server = chat_server([ScriptedReply(status=503), ScriptedReply(status=502), "done",
                          ScriptedReply(status=400, content="bad request"),
                          ScriptedReply(raw_body=b"<html>proxy error</html>")])
    policy = _policy(server.url, "lean", max_retries=3)
    assert (await policy.act(CONVO, TOOLS)).message.text == "done"
    assert len(server.requests) == 3
    with pytest.raises(PolicyError, match="HTTP 400: bad request"):
        await policy.act(CONVO, TOOLS)
    assert len(server.requests) == 4  # a 4xx is not retried
    with pytest.raises(PolicyError, match="not JSON"):
        await policy.act(CONVO, TOOLS)
    await policy.aclose()


@pytest.mark.anyio
async def test_lean_times_out_and_reports_an_endpoint_that_is_down(chat_server):
    server = chat_server([ScriptedReply(content="late", delay_s=1.0)])
    policy = _policy(server.url, "lean", max_retries=0, request_timeout_s=0.2)
    with pytest.raises(PolicyError, match="no answer within 0.2 s"):
        await policy.act(CONVO, TOOLS)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()  # nothing listens there now
    down = _policy(f"http://127.0.0.1:{port}/v1", "lean", max_retries=2)
    with pytest.raises(PolicyError, match="after 3 attempt"):
        await down.act(CONVO, TOOLS)


async def _one_shot_server(chunked: bool, seen: list[int]):
    """An HTTP/1.1 server that answers one request per connection and then hangs up without
    saying so (as servers do with idle keep-alive sockets), optionally with a chunked body."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    body = json.dumps({"choices": [{"message": {"role": "assistant", "content": "ok"}}],
                       "usage": {"prompt_tokens": 1, "completion_tokens": 1}}).encode()

    async def handle(stream) -> None:
        seen.append(1)
        data = b""
        async with stream:
            while b"\r\n\r\n" not in data:
                data += await stream.receive()
            head, _, rest = data.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
            while len(rest) < length:
                rest += await stream.receive()
            if chunked:
                half = len(body) // 2
                payload = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, body[:half], len(body) - half, body[half:])
                await stream.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + payload)
            else:
                await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    return listener, handle


@pytest.mark.anyio
@pytest.mark.parametrize("chunked", [False, True])
async def test_lean_reconnects_when_the_server_dropped_an_idle_connection(chunked):
    seen: list[int] = []
    listener, handle = await _one_shot_server(chunked, seen)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    client = LeanHTTPClient(f"http://127.0.0.1:{port}/v1")
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        for _ in range(3):
            out = await client.post_json("/chat/completions", {"model": "m", "messages": []})
            assert out["choices"][0]["message"]["content"] == "ok"
            await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    await client.aclose()
    assert len(seen) == 3  # a fresh connection for each request after the server hung up


def test_lean_rejects_a_url_it_cannot_speak_to():
    with pytest.raises(ValueError, match="http"):
        LeanHTTPClient("unix:///tmp/sock")
    assert LeanHTTPError("x", status=503, retryable=True).retryable


def test_one_policy_serves_two_event_loops(chat_server):
    server = chat_server(["one", "two"])
    policy = _policy(server.url, "lean")
    assert anyio.run(policy.act, CONVO, TOOLS).message.text == "one"
    assert anyio.run(policy.act, CONVO, TOOLS).message.text == "two"
