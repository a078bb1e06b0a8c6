"""The one way traject talks to an OpenAI-compatible server: ``Transport.post_json(path, body)``.

Policies, judges and simulated users all send through it: one HTTP client (the lean keep-alive
client of ``traject.agents.lean_http``, chosen over httpx and the openai SDK by
``benchmarks/http_transport.py``: about 14x less CPU per request than httpx and 23x less than
the SDK) and one retry policy (``RetryPolicy``, run by tenacity).

Errors come out as ``EndpointError`` (an ``InfraError``): retried while ``retryable``
(connection failures, timeouts, malformed answers, 429, 5xx), raised with the attempt count when
retries run out or at once when not retryable. An HTTP 400 that says the request does not fit
the model's context (vLLM, SGLang, OpenAI wording) is ``ContextLengthError``, never retried:
a policy turns it into ``ContextExhausted`` so the episode ends truncated and is scored.
"""

from __future__ import annotations

import os
import re
from typing import Any

import anyio
from pydantic import BaseModel, ConfigDict, Field
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from traject.agents.lean_http import APIStatusError, LeanHTTPClient, LeanHTTPError

EndpointError = LeanHTTPError


class ContextLengthError(APIStatusError):
    """The server refused the request because prompt + max_tokens exceed the model's context."""


_CONTEXT = re.compile(
    r"context_length_exceeded|maximum context length|context length of|longer than the model's context length"
    r"|maximum model length|max_model_len|requested token count exceeds|prompt is too long"
    r"|reduce the length of the messages|(?:max_tokens|max_completion_tokens)'? (?:or '?max_completion_tokens'? )?"
    r"is too large|input tokens? exceed|exceeds? (?:the )?(?:model'?s? )?context",
    re.IGNORECASE,
)


def is_context_length_error(status: int | None, message: str) -> bool:
    """Whether an HTTP error says the request does not fit the model's context window."""
    return status in (400, 413, 422) and bool(_CONTEXT.search(message))


class RetryPolicy(BaseModel):
    """How transient failures are retried: ``max_retries`` more attempts, waiting a random time
    up to ``backoff_s * 2**attempt`` (at most ``backoff_max_s``) before each."""

    model_config = ConfigDict(extra="forbid")

    max_retries: int = Field(default=4, ge=0)
    backoff_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=20.0, ge=0)

    def retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=wait_random_exponential(multiplier=self.backoff_s, max=self.backoff_max_s),
            retry=retry_if_exception(lambda e: isinstance(e, LeanHTTPError) and e.retryable),
            sleep=anyio.sleep, reraise=True,
        )


def resolve_base_url(base_url: str | None) -> str:
    return (base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")


class Transport:
    """JSON requests to one OpenAI-compatible base URL, pooled and retried."""

    def __init__(self, base_url: str | None, *, api_key: str | None = None, timeout_s: float = 120.0,
                 retry: RetryPolicy | None = None, max_connections: int = 4096) -> None:
        self.base_url = resolve_base_url(base_url)
        self.retry = retry or RetryPolicy()
        self.requests = 0  # HTTP requests sent, retries included
        self.client = LeanHTTPClient(self.base_url, timeout_s=timeout_s, max_connections=max_connections,
                                     headers={"Authorization": f"Bearer {api_key or 'EMPTY'}"})

    async def post_json(self, path: str, body: Any) -> Any:
        """POST ``body`` to ``base_url + path``; the decoded JSON answer. Raises EndpointError
        (``ContextLengthError`` for a context overflow) once retries are spent."""
        return await self._send("POST", path, body)

    async def get_json(self, path: str, *, retry: RetryPolicy | None = None) -> Any:
        return await self._send("GET", path, None, retry)

    async def _send(self, method: str, path: str, body: Any, retry: RetryPolicy | None = None) -> Any:
        attempts = 0
        try:
            async for attempt in (retry or self.retry).retrying():
                with attempt:
                    attempts += 1
                    self.requests += 1
                    try:
                        return await self.client.request_json(method, path, body)
                    except APIStatusError as exc:
                        if is_context_length_error(exc.status, str(exc)):
                            raise ContextLengthError(str(exc), exc.status or 400) from None
                        raise
        except LeanHTTPError as exc:
            exc.attempts = attempts
            raise
        raise AssertionError("unreachable")

    async def check(self) -> None:
        """One request (``GET /models``, no retries); EndpointError with the fix when it fails."""
        try:
            await self.get_json("/models", retry=RetryPolicy(max_retries=0))
        except APIStatusError as exc:
            hint = {401: "the endpoint refused the API key: set OPENAI_API_KEY (or the config's api_key_env)",
                    403: "the endpoint refused the API key: set OPENAI_API_KEY (or the config's api_key_env)",
                    404: "is the base URL right? OpenAI-compatible servers serve under /v1, "
                         "e.g. http://127.0.0.1:8000/v1"}.get(exc.status or 0, "")
            raise LeanHTTPError(f"{self.base_url}/models answered {exc}" + (f"; {hint}" if hint else ""),
                                status=exc.status) from None
        except LeanHTTPError as exc:
            raise LeanHTTPError(f"{self.base_url} is not answering as an OpenAI-compatible server: {exc}; "
                                "start the server, or pass the right --base-url", status=exc.status) from None

    async def aclose(self) -> None:
        await self.client.aclose()
