"""The language model behind a simulator (a user, a simulated tool): any OpenAI-compatible
chat endpoint, with retries, per-episode seeds and a response cache.

Every call is made for an episode: the seed comes from ``traject.episode.current_episode()``
(one per attempt), and an accepted answer is cached under (conversation, seed, purpose), so
re-running an episode replays the simulator exactly. Requests go through
``traject.agents.transport`` (the one transport and retry policy: transient endpoint failures
are retried there). An answer the caller rejects (empty, out of character) is asked again with
another sampling seed; when the attempts run out, or the endpoint keeps failing, the call
raises ``InfraError``: the episode is then marked ``infra_error``, never counted as the agent's
failure.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from traject.agents.lean_http import Attr, wrap
from traject.agents.transport import EndpointError, RetryPolicy, Transport
from traject.environments.users.cache import ResponseCache, cache_key, default_cache
from traject.episode import current_episode
from traject.types import InfraError, ToolCall

DEFAULT_MODEL = "user-simulator"


class SimulatorLLMConfig(BaseModel):
    """Where the simulator's model is served, and how to sample it.

    ``base_url``, ``model`` and ``api_key`` default from ``{env_prefix}_BASE_URL``,
    ``{env_prefix}_MODEL`` and ``{env_prefix}_API_KEY`` (``TRAJECT_USER_*`` by default), read
    when a call is made, so an env can be built before its endpoint is known.
    """

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
    model: str | None = None
    api_key: str | None = None
    env_prefix: str = "TRAJECT_USER"
    temperature: float = 0.7
    max_tokens: int | None = 1024
    request_timeout_s: float = 60.0
    # Attempts per call, counting the first: of the endpoint (transient failures, retried with
    # backoff) and, separately, of answers the caller rejects.
    max_attempts: int = Field(default=2, ge=1)
    backoff_s: float = 0.5
    send_seed: bool = True
    cache: bool = True

    def resolved_base_url(self) -> str | None:
        return self.base_url or os.environ.get(f"{self.env_prefix}_BASE_URL") or None

    def resolved_model(self) -> str:
        return self.model or os.environ.get(f"{self.env_prefix}_MODEL") or DEFAULT_MODEL

    def resolved_api_key(self) -> str:
        return self.api_key or os.environ.get(f"{self.env_prefix}_API_KEY") or "EMPTY"


class ChatReply(BaseModel):
    """One answer of the simulator's model."""

    model_config = ConfigDict(extra="forbid")

    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)


Validator = Callable[[ChatReply], "str | None"]


def derive_seed(seed: int, purpose: str, attempt: int) -> int:
    digest = hashlib.blake2b(f"{seed}\0{purpose}\0{attempt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % (2**31)


class SimulatorLLM:
    """``await llm.generate(messages, purpose="user_reply", validate=...)`` -> ChatReply."""

    def __init__(self, config: SimulatorLLMConfig | None = None, *, name: str = "user simulator",
                 cache: ResponseCache | None = None, **kwargs: Any) -> None:
        self.config = config or SimulatorLLMConfig(**kwargs)
        self.name = name
        self._cache = cache
        self._client: Any = None
        self._client_url: str | None = None
        self.requests = 0

    @property
    def cache(self) -> ResponseCache | None:
        if not self.config.cache:
            return None
        return self._cache if self._cache is not None else default_cache()

    def _get_client(self) -> Transport:
        base_url = self.config.resolved_base_url()
        if base_url is None:
            raise InfraError(
                f"the {self.name} has no endpoint: pass user_base_url= (or base_url=) to the env, or set "
                f"{self.config.env_prefix}_BASE_URL to an OpenAI-compatible server (e.g. vLLM `serve`)"
            )
        if self._client is None or self._client_url != base_url:
            c = self.config
            self._client = Transport(base_url, api_key=c.resolved_api_key(), timeout_s=c.request_timeout_s,
                                     retry=RetryPolicy(max_retries=c.max_attempts - 1, backoff_s=c.backoff_s))
            self._client_url = base_url
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP client (a later call opens a new one)."""
        client, self._client, self._client_url = self._client, None, None
        if client is not None:
            await client.aclose()

    async def generate(self, messages: list[dict[str, Any]], *, purpose: str,
                       tools: list[dict[str, Any]] | None = None, validate: Validator | None = None,
                       temperature: float | None = None) -> ChatReply:
        episode = current_episode()
        seed = episode.seed if episode is not None else None
        temp = self.config.temperature if temperature is None else temperature
        key = None
        cache = self.cache
        if cache is not None and seed is not None:
            key = cache_key({"base_url": self.config.resolved_base_url(), "model": self.config.resolved_model(),
                             "temperature": temp, "max_tokens": self.config.max_tokens, "messages": messages,
                             "tools": tools, "seed": seed, "purpose": purpose})
            hit = cache.get(key)
            if hit is not None:
                return ChatReply.model_validate(hit)
        problems: list[str] = []
        for attempt in range(self.config.max_attempts):
            try:
                reply = await self._request(messages, tools, temp,
                                            derive_seed(seed, purpose, attempt) if seed is not None else None)
            except InfraError as exc:
                problems.append(f"endpoint failed: {exc}")
                break
            problem = validate(reply) if validate is not None else None
            if problem is None:
                if key is not None and cache is not None:
                    cache.put(key, reply.model_dump(mode="json"))
                return reply
            problems.append(problem)
        raise InfraError(f"the {self.name} gave no usable answer ({purpose}) after "
                         f"{len(problems)} attempt(s): " + "; ".join(problems))

    async def _request(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                       temperature: float, seed: int | None) -> ChatReply:
        transport = self._get_client()
        req: dict[str, Any] = {"model": self.config.resolved_model(), "messages": messages,
                               "temperature": temperature}
        if self.config.max_tokens is not None:
            req["max_tokens"] = self.config.max_tokens
        if tools:
            req["tools"] = tools
        if seed is not None and self.config.send_seed:
            req["seed"] = seed
        sent = transport.requests
        try:
            resp = wrap(await transport.post_json("/chat/completions", req))
        except EndpointError as exc:
            raise InfraError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            self.requests += transport.requests - sent
        if not resp.choices or not isinstance(resp.choices, list) or not isinstance(resp.choices[0].message, Attr):
            raise InfraError("the endpoint answered with no choices")
        msg = resp.choices[0].message
        calls = [_parse_call(c) for c in (msg.tool_calls or [])]
        return ChatReply(content=msg.content or "", tool_calls=calls)


def _parse_call(c: Any) -> ToolCall:
    fn = getattr(c, "function", None)
    name = getattr(fn, "name", None) or ""
    raw = getattr(fn, "arguments", None) or ""
    kwargs: dict[str, Any] = {"id": c.id} if getattr(c, "id", None) else {}
    try:
        args = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as exc:
        return ToolCall(name=name, raw=raw, error=f"the arguments are not valid JSON: {exc.msg}", **kwargs)
    if not isinstance(args, dict):
        return ToolCall(name=name, raw=raw, error="the arguments must be a JSON object", **kwargs)
    return ToolCall(name=name, arguments=args, **kwargs)
