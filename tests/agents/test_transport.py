"""The one transport (traject.agents.transport over the lean client) against real servers on
127.0.0.1: what OpenAIPolicy sends and reads, retries, malformed answers, context overflow."""

from __future__ import annotations

import json

import anyio
import pytest

from traject.agents.lean_http import LeanHTTPClient, LeanHTTPError
from traject.agents.openai_policy import OpenAIPolicy
from traject.agents.policy import ContextExhausted, PolicyError
from traject.agents.transport import ContextLengthError, is_context_length_error
from traject.testing import ScriptedReply
from traject.types import Message, ToolCall, ToolSchema

TOOLS = [ToolSchema(name="lookup", description="Look up.", parameters={"type": "object", "properties": {"item": {"type": "string"}}})]
CONVO = [Message.system("sys"), Message.user("How much?"),
         Message.assistant("", tool_calls=[ToolCall(id="call_1", name="lookup", arguments={"item": "pear"})]),
         Message.tool("3", tool_call_id="call_1", name="lookup")]


def _policy(url: str, **kw) -> OpenAIPolicy:
    return OpenAIPolicy(model="m", base_url=url, backoff_s=0.01, **kw)


@pytest.mark.anyio
async def test_the_policy_sends_the_chat_api_request_and_reads_the_answer(chat_server):
    server = chat_server([ScriptedReply(content="thinking", tool_calls=[("lookup", {"item": "fig"}), ("lookup", '{"item": ')],
                                        prompt_tokens=31, completion_tokens=7)])
    policy = _policy(server.url, extra_body={"top_k": 5}, temperature=0.5, max_tokens=64)
    out = await policy.act(CONVO, TOOLS)
    body = server.requests[0].body
    assert body == {
        "model": "m", "temperature": 0.5, "max_tokens": 64, "top_k": 5,
        "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "How much?"},
                     {"role": "assistant", "content": None, "tool_calls": [
                         {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"item": "pear"}'}}]},
                     {"role": "tool", "tool_call_id": "call_1", "content": "3"}],
        "tools": [t.to_openai() for t in TOOLS],
    }
    assert (out.prompt_tokens, out.completion_tokens) == (31, 7)
    assert out.message.text == "thinking" and out.message.tool_calls[0].arguments == {"item": "fig"}
    assert out.message.tool_calls[1].error is not None
    # aclose closes the pool it used (it was defined twice, and the second never closed it)
    assert policy.transport.client._idle
    await policy.aclose()
    assert not policy.transport.client._idle and policy.transport.client._closed


@pytest.mark.anyio
async def test_lean_retries_5xx_then_succeeds_and_gives_up_on_4xx_and_garbage(chat_server):
    server = chat_server([ScriptedReply(status=503), ScriptedReply(status=502), "done",
                          ScriptedReply(status=400, content="bad request"),
                          ScriptedReply(raw_body=b"<html>proxy error</html>")])
    policy = _policy(server.url, max_retries=3)
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
    policy = _policy(server.url, max_retries=0, request_timeout_s=0.2)
    with pytest.raises(PolicyError, match="no answer within 0.2 s"):
        await policy.act(CONVO, TOOLS)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()  # nothing listens there now
    down = _policy(f"http://127.0.0.1:{port}/v1", max_retries=2)
    with pytest.raises(PolicyError, match="after 3 attempt"):
        await down.act(CONVO, TOOLS)


async def _one_shot_server(chunked: bool, seen: list[int], first_head: bytes | None = None):
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
            if first_head is not None and len(seen) == 1:
                await stream.send(first_head + body)
            elif chunked:
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
    policy = _policy(server.url)
    assert anyio.run(policy.act, CONVO, TOOLS).message.text == "one"
    assert anyio.run(policy.act, CONVO, TOOLS).message.text == "two"


@pytest.mark.anyio
@pytest.mark.parametrize("head", [b"HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\n",
                                  b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"])
async def test_a_malformed_length_is_a_retryable_connection_error_not_a_crash(head):
    seen: list[int] = []
    listener, handle = await _one_shot_server(False, seen, first_head=head)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    policy = _policy(f"http://127.0.0.1:{port}/v1", max_retries=2)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        out = await policy.act(CONVO, TOOLS)  # before: ValueError escaped the retry filter
        tg.cancel_scope.cancel()
    await policy.aclose()
    assert out.message.text == "ok" and len(seen) == 2


# Context-overflow answers as vLLM, OpenAI and SGLang word them (HTTP 400).
OVERFLOWS = [
    "This model's maximum context length is 4096 tokens. However, you requested 5120 tokens "
    "(4096 in the messages, 1024 in the completion). Please reduce the length of the messages or completion.",
    "'max_tokens' or 'max_completion_tokens' is too large: 1024. This model's maximum context length is 2048 "
    "tokens and your request has 1500 input tokens (1024 > 2048 - 1500).",
    "The decoder prompt (length 9000) is longer than the maximum model length of 8192. Make sure that "
    "`max_model_len` is no smaller than the number of text tokens.",
    "The input (9000 tokens) is longer than the model's context length (8192 tokens).",
    "Requested token count exceeds the model's maximum context length of 8192 tokens. You requested a total "
    "of 9100 tokens: 9000 tokens from the input messages and 100 tokens for the completion.",
]


@pytest.mark.parametrize("message", OVERFLOWS)
def test_context_overflow_wordings_are_recognised(message):
    assert is_context_length_error(400, message)
    assert not is_context_length_error(500, message)


def test_other_400s_are_not_context_overflow():
    assert not is_context_length_error(400, "HTTP 400: Invalid 'tools' format")
    assert not is_context_length_error(400, "bad request")


@pytest.mark.anyio
@pytest.mark.parametrize("message", OVERFLOWS[:1] + OVERFLOWS[3:4])
async def test_a_context_overflow_400_raises_context_exhausted_without_retrying(chat_server, message):
    server = chat_server([ScriptedReply(status=400, content=message)])
    policy = _policy(server.url, max_retries=3)
    with pytest.raises(ContextExhausted) as info:
        await policy.act(CONVO, TOOLS)
    assert isinstance(info.value.__cause__, ContextLengthError)
    assert len(server.requests) == 1
    await policy.aclose()


@pytest.mark.anyio
async def test_judges_and_simulated_users_send_through_the_same_transport_and_retry_policy(chat_server):
    from pydantic import BaseModel

    from traject.agents.transport import Transport
    from traject.environments.users import SimulatorLLM, SimulatorLLMConfig
    from traject.environments.users.cache import ResponseCache
    from traject.rewards.judge import JudgeConfig, LLMJudge

    class Verdict(BaseModel):
        ok: bool

    server = chat_server([ScriptedReply(status=503), '{"ok": true}', ScriptedReply(status=502), "Hi there."])
    judge = LLMJudge(JudgeConfig(base_url=server.url, backoff_s=0.01))
    assert (await judge.ask("ok?", Verdict)).value.ok
    assert judge.stats.requests == 2  # the 503 was retried by the transport
    user = SimulatorLLM(SimulatorLLMConfig(base_url=server.url, backoff_s=0.01), cache=ResponseCache())
    assert (await user.generate([{"role": "user", "content": "hi"}], purpose="t")).content == "Hi there."
    assert user.requests == 2
    assert isinstance(judge._client, Transport) and isinstance(user._client, Transport)
    await judge.aclose()
    await user.aclose()
