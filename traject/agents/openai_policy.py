"""OpenAIPolicy: any OpenAI-compatible chat endpoint (vLLM ``serve``, SGLang, OpenAI).

Tools go to the endpoint natively (``tools=``), or, with ``tool_format="hermes"`` (or another
format), are rendered into the system prompt and parsed back out of the text, for endpoints
that serve a model without a tool parser. Requests go out through ``traject.agents.transport``
(the one transport and retry policy of policies, judges and simulated users). When retries run
out the policy raises PolicyError, which marks the trajectory ``infra_error``; an endpoint that
says the conversation no longer fits the model's context raises ContextExhausted, which ends the
episode truncated and still scored.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from pydantic import BaseModel, ConfigDict

from traject.agents.lean_http import Attr, wrap
from traject.agents.parsers import get_format
from traject.agents.parsers.base import ToolCallFormat
from traject.agents.policy import ContextExhausted, PolicyError, PolicyOutput
from traject.agents.served_tokens import ChatTokenCapture
from traject.agents.transport import ContextLengthError, EndpointError, RetryPolicy, Transport
from traject.episode import current_episode
from traject.types import ImagePart, Message, TextPart, ToolCall, ToolSchema


class OpenAIPolicyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    base_url: str | None = None
    api_key: str | None = None
    temperature: float = 1.0
    top_p: float | None = None
    max_tokens: int | None = 1024
    tool_format: str | None = None  # None: native tools; else a format name ("hermes", ...)
    request_timeout_s: float = 120.0
    max_retries: int = 4
    backoff_s: float = 0.5
    backoff_max_s: float = 20.0
    send_seed: bool = True
    extra_body: dict[str, Any] = {}
    # Ask for the exact tokens (vLLM's ``return_token_ids`` and ``logprobs``; ``traject serve``
    # answers them too). None: ask self-hosted servers (plain http:// base URLs) only.
    return_token_ids: bool | None = None


def content_to_openai(content: str | list[Any]) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for p in content:
        if isinstance(p, TextPart):
            parts.append({"type": "text", "text": p.text})
        elif isinstance(p, ImagePart):
            url = p.url or f"data:{p.mime_type};base64,{p.data}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


def messages_to_openai(messages: list[Message], fmt: ToolCallFormat | None = None) -> list[dict[str, Any]]:
    """Messages in the chat API's shape. With a text format, tool calls and results are text."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "assistant":
            if fmt is not None:
                out.append({"role": "assistant", "content": fmt.render_calls(m.text, m.tool_calls)})
                continue
            d: dict[str, Any] = {"role": "assistant", "content": m.text or None}
            if m.tool_calls:
                d["tool_calls"] = [{
                    "id": c.id, "type": "function",
                    "function": {"name": c.name, "arguments": c.raw if c.error is not None and c.raw is not None
                                 else json.dumps(c.arguments, ensure_ascii=False)},
                } for c in m.tool_calls]
            out.append(d)
        elif m.role == "tool":
            if fmt is not None:
                out.append({"role": "user", "content": fmt.render_result(m.name or "", m.text)})
            else:
                out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": content_to_openai(m.content)})
        else:
            out.append({"role": m.role, "content": content_to_openai(m.content)})
    return out


class OpenAIPolicy:
    def __init__(self, config: OpenAIPolicyConfig | None = None, **kwargs: Any) -> None:
        self.config = config or OpenAIPolicyConfig(**kwargs)
        c = self.config
        self.transport = Transport(c.base_url, api_key=c.api_key or os.environ.get("OPENAI_API_KEY"),
                                   timeout_s=c.request_timeout_s,
                                   retry=RetryPolicy(max_retries=c.max_retries, backoff_s=c.backoff_s,
                                                     backoff_max_s=c.backoff_max_s))
        self.format = get_format(c.tool_format) if c.tool_format else None
        wanted = self.config.return_token_ids
        self.wants_tokens = self.transport.base_url.startswith("http://") if wanted is None else wanted
        self.tokens = ChatTokenCapture(self.transport.base_url)

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def check(self) -> None:
        """Send the endpoint one request; PolicyError saying what to fix when it fails."""
        try:
            await self.transport.check()
        except EndpointError as exc:
            raise PolicyError(str(exc)) from exc

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        """POST ``body`` to ``path`` under ``base_url`` through the transport and its retries;
        the decoded JSON. ContextExhausted when the server says the request does not fit the
        model's context; PolicyError when it keeps failing."""
        try:
            return await self.transport.post_json(path, body)
        except ContextLengthError as exc:
            raise ContextExhausted(f"the server refused the request as beyond the model's context: {exc}") from exc
        except EndpointError as exc:
            raise PolicyError(f"chat endpoint failed: {type(exc).__name__}: {exc}") from exc

    async def _create(self, req: dict[str, Any]) -> Any:
        """Send one chat request; the answer with attribute access (``resp.choices[0].message``)."""
        body = dict(req)
        body.update(body.pop("extra_body", None) or {})
        return wrap(await self.post("/chat/completions", body))

    async def __aenter__(self) -> OpenAIPolicy:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _request(self, messages: list[Message], tools: list[ToolSchema]) -> dict[str, Any]:
        api_messages = messages_to_openai(messages, self.format)
        req: dict[str, Any] = {"model": self.config.model, "messages": api_messages,
                               "temperature": self.config.temperature}
        if self.config.max_tokens is not None:
            req["max_tokens"] = self.config.max_tokens
        if self.config.top_p is not None:
            req["top_p"] = self.config.top_p
        if tools:
            if self.format is None:
                req["tools"] = [t.to_openai() for t in tools]
            else:
                rendered = self.format.render_tools(tools)
                if api_messages and api_messages[0]["role"] == "system":
                    api_messages[0] = {"role": "system", "content": f"{api_messages[0]['content']}\n\n{rendered}"}
                else:
                    api_messages.insert(0, {"role": "system", "content": rendered})
        if self.config.send_seed and (ep := current_episode()) is not None:
            req["seed"] = ep.seed % (2**31)
        extra = dict(self.config.extra_body)
        if self.wants_tokens:
            extra.setdefault("return_token_ids", True)
            req["logprobs"] = True
        if extra:
            req["extra_body"] = extra
        return req

    async def act(self, messages: list[Message], tools: list[ToolSchema]) -> PolicyOutput:
        req = self._request(messages, tools)
        t0 = time.perf_counter()
        resp = await self._create(req)
        if not resp.choices or not isinstance(resp.choices, list):
            raise PolicyError("chat endpoint answered with no choices")
        choice = resp.choices[0]
        msg = choice.message if isinstance(choice, Attr) else None
        if not isinstance(msg, Attr):
            raise PolicyError(f"chat endpoint answered with a choice that has no message: {choice!r:.200}")
        text = msg.content or ""
        reasoning = getattr(msg, "reasoning_content", None) or getattr(msg, "reasoning", None)
        if self.format is not None:
            parsed = self.format.parse(text)
            text, calls = parsed.content, parsed.tool_calls
        else:
            calls = [_native_call(c) for c in (msg.tool_calls or [])]
        usage = resp.usage
        message = Message.assistant(text, tool_calls=calls, reasoning=reasoning if isinstance(reasoning, str) else None)
        if self.wants_tokens:
            message.generation = self.tokens.generation(resp, choice)
        return PolicyOutput(
            message=message,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            latency_s=time.perf_counter() - t0,
        )


def _native_call(c: Any) -> ToolCall:
    fn = getattr(c, "function", None)
    name = getattr(fn, "name", None) or ""
    raw = getattr(fn, "arguments", None) or ""
    call_id = getattr(c, "id", None)
    kwargs: dict[str, Any] = {"id": call_id} if call_id else {}
    try:
        args = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as exc:
        return ToolCall(name=name, raw=raw, error=f"the arguments are not valid JSON: {exc.msg} at position {exc.pos}", **kwargs)
    if not isinstance(args, dict):
        return ToolCall(name=name, raw=raw, error="the arguments must be a JSON object", **kwargs)
    if not name:
        return ToolCall(name="", raw=raw, error="the tool call has no function name", **kwargs)
    return ToolCall(name=name, arguments=args, **kwargs)
