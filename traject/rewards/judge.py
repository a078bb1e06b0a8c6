"""LLMJudge: typed answers from any OpenAI-compatible endpoint, concurrent, retried and cached.

A judge call sends chat messages and a pydantic answer model. The answer is asked for as
``response_format={"type": "json_schema", ...}``; an endpoint that refuses that (HTTP 400) is
asked again without it, and the JSON is then parsed out of the text (a bare object, a fenced
```json block, or the last ``{...}`` in the text). Every later call of that judge skips the
refused format.

* Requests go through ``traject.agents.transport`` (the one transport and retry policy):
  connection errors, timeouts, 429 and 5xx are retried with exponential backoff; when retries
  run out the call raises :class:`JudgeError`.
* An answer that does not parse into the model is asked again ``parse_retries`` times, then
  raises :class:`JudgeParseError`. A reward that gets one marks its RewardResult ``failed``:
  the trajectory is left out of its group, never scored 0.
* At most ``max_concurrency`` requests are in flight per judge (an anyio CapacityLimiter).
* Answers are cached by content: the hash of (model, sampling settings, messages, answer
  schema). Two identical questions in flight at once make one request.

>>> from pydantic import BaseModel
>>> from traject.testing import ScriptedChatServer
>>> class Verdict(BaseModel):
...     analysis: str
...     answer: bool
>>> import anyio
>>> with ScriptedChatServer(['{"analysis": "it is", "answer": true}']) as server:
...     judge = LLMJudge(JudgeConfig(base_url=server.url, model="j"))
...     a = anyio.run(judge.ask, "Is the sky blue?", Verdict)
>>> a.value.answer, a.cached
(True, False)
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import anyio
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from traject.agents.lean_http import APIStatusError
from traject.agents.transport import ContextLengthError, EndpointError, RetryPolicy, Transport

T = TypeVar("T", bound=BaseModel)

ResponseFormat = Literal["json_schema", "json_object", "text"]


class JudgeConfig(BaseModel):
    """Every knob of a judge. ``api_key`` None reads ``OPENAI_API_KEY`` (or sends "EMPTY")."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
    model: str = "judge"
    api_key: str | None = None
    temperature: float = 0.0
    top_p: float | None = None
    max_tokens: int | None = 2048
    response_format: ResponseFormat = "json_schema"
    request_timeout_s: float = 120.0
    max_retries: int = Field(default=3, ge=0)
    parse_retries: int = Field(default=1, ge=0)
    backoff_s: float = 0.2
    backoff_max_s: float = 10.0
    max_concurrency: int = Field(default=16, ge=1)
    cache: bool = True
    cache_size: int = Field(default=100_000, ge=0)
    extra_body: dict[str, Any] = Field(default_factory=dict)


class JudgeError(RuntimeError):
    """The judge gave no usable answer (its endpoint failed after retries)."""


class JudgeParseError(JudgeError):
    """The judge answered, but not with JSON matching the answer model."""

    def __init__(self, message: str, raw: str | None) -> None:
        super().__init__(message)
        self.raw = raw


@dataclass(frozen=True)
class JudgeAnswer(Generic[T]):
    value: T
    raw: str
    cached: bool = False
    key: str = ""


@dataclass
class JudgeStats:
    requests: int = 0          # HTTP requests sent (retries included)
    calls: int = 0             # ask() calls
    cache_hits: int = 0
    parse_failures: int = 0
    fallbacks: int = 0         # times the structured format was refused and dropped
    in_flight_max: int = 0
    _in_flight: int = field(default=0, repr=False)


Prompt = str | list[dict[str, Any]]


def _as_messages(prompt: Prompt) -> list[dict[str, Any]]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


_FENCE = re.compile(r"```(?:\s*json)?\s*(.*?)\s*```", re.IGNORECASE | re.DOTALL)


def extract_json(text: str) -> Any:
    """The JSON value in ``text``: the whole text, else the last fenced block, else the last
    balanced ``{...}`` object. Raises ValueError when there is none."""
    stripped = text.strip()
    try:
        return json.loads(stripped)
    except json.JSONDecodeError:
        pass
    for block in reversed(_FENCE.findall(text)):
        try:
            return json.loads(block)
        except json.JSONDecodeError:
            continue
    decoder = json.JSONDecoder()
    found: Any = None
    ok = False
    for i, ch in enumerate(text):
        if ch != "{":
            continue
        try:
            value, _ = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            continue
        found, ok = value, True
    if ok:
        return found
    raise ValueError("no JSON object in the answer")


def parse_answer(text: str | None, schema: type[T]) -> T:
    """``text`` parsed into ``schema``; JudgeParseError when it does not fit."""
    if not text:
        raise JudgeParseError("the judge answered with no text", text)
    try:
        obj = extract_json(text)
    except ValueError as exc:
        raise JudgeParseError(f"{exc}: {text[:200]!r}", text) from None
    try:
        return schema.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise JudgeParseError(f"the judge's JSON does not fit {schema.__name__}: {where}: "
                              f"{first['msg']}", text) from None


@functools.lru_cache(maxsize=256)
def _schema_of(schema: type[BaseModel]) -> tuple[dict[str, Any], str]:
    """The model's JSON schema and its canonical text (pydantic rebuilds it on every call)."""
    js = schema.model_json_schema()
    return js, json.dumps(js, sort_keys=True)


def json_schema_format(schema: type[BaseModel]) -> dict[str, Any]:
    return {"type": "json_schema",
            "json_schema": {"name": schema.__name__, "strict": True, "schema": _schema_of(schema)[0]}}


class LLMJudge:
    """A judge on one endpoint. Share one instance between rewards to share its cache and its
    concurrency limit."""

    def __init__(self, config: JudgeConfig | None = None, **overrides: Any) -> None:
        base = config or JudgeConfig()
        self.config = base.model_copy(update=overrides) if overrides else base
        if overrides:
            self.config = JudgeConfig.model_validate(self.config.model_dump())
        self.stats = JudgeStats()
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[str]] = {}
        self._limiter: anyio.CapacityLimiter | None = None
        self._client: Any = None
        self._client_loop: Any = None
        self._format: ResponseFormat = self.config.response_format

    # -- plumbing ------------------------------------------------------------------------

    def _loop_bound(self) -> tuple[Transport, anyio.CapacityLimiter]:
        """The transport, and the limiter of the running event loop (a judge may outlive a
        loop; the transport itself starts a fresh pool on a new loop)."""
        loop = asyncio.get_running_loop()
        if self._client is None:
            c = self.config
            self._client = Transport(c.base_url, api_key=c.api_key or os.environ.get("OPENAI_API_KEY"),
                                     timeout_s=c.request_timeout_s, max_connections=c.max_concurrency,
                                     retry=RetryPolicy(max_retries=c.max_retries, backoff_s=c.backoff_s,
                                                       backoff_max_s=c.backoff_max_s))
        if self._client_loop is not loop:
            self._client_loop = loop
            self._limiter = anyio.CapacityLimiter(self.config.max_concurrency)
            self._inflight = {}
        assert self._limiter is not None
        return self._client, self._limiter

    def cache_key(self, prompt: Prompt, schema: type[BaseModel]) -> str:
        c = self.config
        payload = {"model": c.model, "temperature": c.temperature, "top_p": c.top_p,
                   "max_tokens": c.max_tokens, "messages": _as_messages(prompt),
                   "schema": _schema_of(schema)[1]}
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _remember(self, key: str, text: str) -> None:
        if not self.config.cache or self.config.cache_size == 0:
            return
        self._cache[key] = text
        self._cache.move_to_end(key)
        while len(self._cache) > self.config.cache_size:
            self._cache.popitem(last=False)

    def clear_cache(self) -> None:
        self._cache.clear()

    async def _request(self, messages: list[dict[str, Any]], schema: type[BaseModel]) -> str:
        transport, limiter = self._loop_bound()
        c = self.config
        while True:
            body: dict[str, Any] = {"model": c.model, "messages": messages, "temperature": c.temperature}
            if c.top_p is not None:
                body["top_p"] = c.top_p
            if c.max_tokens is not None:
                body["max_tokens"] = c.max_tokens
            fmt = self._format
            if fmt == "json_schema":
                body["response_format"] = json_schema_format(schema)
            elif fmt == "json_object":
                body["response_format"] = {"type": "json_object"}
            body.update(c.extra_body)
            sent = transport.requests
            try:
                async with limiter:
                    self.stats._in_flight += 1
                    self.stats.in_flight_max = max(self.stats.in_flight_max, self.stats._in_flight)
                    try:
                        data = await transport.post_json("/chat/completions", body)
                    finally:
                        self.stats._in_flight -= 1
                        self.stats.requests += transport.requests - sent
            except APIStatusError as exc:
                if exc.status == 400 and fmt != "text" and not isinstance(exc, ContextLengthError):
                    # The endpoint refuses structured output: ask for plain text from now on.
                    self._format = "text"
                    self.stats.fallbacks += 1
                    continue
                raise JudgeError(f"judge request failed: {exc}") from exc
            except EndpointError as exc:
                raise JudgeError(f"judge request failed: {type(exc).__name__}: {exc}") from exc
            try:
                return data["choices"][0]["message"].get("content") or ""
            except (KeyError, IndexError, TypeError, AttributeError):
                text = json.dumps(data)[:200]
                raise JudgeParseError(f"the judge endpoint sent a body that is not a chat completion: {text!r}",
                                      text) from None

    # -- the API -------------------------------------------------------------------------

    async def ask(self, prompt: Prompt, schema: type[T]) -> JudgeAnswer[T]:
        """Ask ``prompt`` (a user text or chat messages); the answer parsed into ``schema``."""
        self.stats.calls += 1
        key = self.cache_key(prompt, schema)
        if self.config.cache and key in self._cache:
            self.stats.cache_hits += 1
            self._cache.move_to_end(key)
            return JudgeAnswer(parse_answer(self._cache[key], schema), self._cache[key], cached=True, key=key)
        self._loop_bound()
        pending = self._inflight.get(key) if self.config.cache else None
        if pending is not None:
            self.stats.cache_hits += 1
            text = await asyncio.shield(pending)
            return JudgeAnswer(parse_answer(text, schema), text, cached=True, key=key)
        future: asyncio.Future[str] | None = None
        if self.config.cache:
            future = asyncio.get_running_loop().create_future()
            self._inflight[key] = future
        try:
            value, text = await self._ask_uncached(prompt, schema)
        except BaseException as exc:
            if future is not None:
                self._inflight.pop(key, None)
                if isinstance(exc, Exception):
                    future.set_exception(exc)
                    future.exception()  # retrieved here, so an unwaited future does not warn
                else:
                    future.cancel()
            raise
        self._remember(key, text)
        if future is not None:
            self._inflight.pop(key, None)
            future.set_result(text)
        return JudgeAnswer(value, text, cached=False, key=key)

    async def _ask_uncached(self, prompt: Prompt, schema: type[T]) -> tuple[T, str]:
        messages = _as_messages(prompt)
        last: JudgeParseError | None = None
        for _ in range(self.config.parse_retries + 1):
            text = await self._request(messages, schema)
            try:
                return parse_answer(text, schema), text
            except JudgeParseError as exc:
                self.stats.parse_failures += 1
                last = exc
        assert last is not None
        raise last

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
