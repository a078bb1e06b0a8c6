"""The ASGI app of ``traject serve`` (Starlette, served by uvicorn).

Endpoints:

* ``GET  /v1/models``: the served model, with ``max_model_len`` and ``policy_version``;
* ``POST /v1/completions``: ``prompt`` as token ids (or text); with ``return_token_ids``
  the choice carries ``prompt_token_ids`` and ``token_ids``, with ``logprobs`` the usual
  ``logprobs.token_logprobs`` (vLLM's fields);
* ``POST /v1/chat/completions``: the chat template renders the messages, tool calls are parsed
  in the configured format; ``return_token_ids`` adds ``prompt_token_ids`` (top level) and
  ``choices[0].token_ids``, ``logprobs: true`` adds ``choices[0].logprobs.content``;
* ``POST /generate``: SGLang's native form (``input_ids``, ``sampling_params``,
  ``return_logprob``), answering ``output_ids`` and ``meta_info.output_token_logprobs``;
* ``POST /update_weights_from_disk``: ``{"model_path": DIR, "policy_version": N?}``;
* ``GET  /health``.

Every generation answer carries ``policy_version`` in its body and the ``x-policy-version``
header. Errors use vLLM's shape (``{"error": {"message", "type", "param", "code"}}``); a
request beyond the context window is HTTP 400.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from traject.serve.engine import BadWeights, ContextOverflow, Sampled, ServeEngine, messages_from_openai, sampling
from traject.serve.engine import tools_from_openai
from traject.serve.protocol import (
    POLICY_VERSION_HEADER,
    ChatRequest,
    CompletionRequest,
    GenerateRequest,
    UpdateWeightsRequest,
    error_body,
)

log = logging.getLogger(__name__)


def _error(message: str, status: int = 400, param: str | None = None) -> JSONResponse:
    kind = "BadRequestError" if status < 500 else "InternalServerError"
    return JSONResponse(error_body(message, status=status, type_=kind, param=param), status_code=status)


def _answer(body: dict[str, Any], version: int) -> JSONResponse:
    body["policy_version"] = version
    return JSONResponse(body, headers={POLICY_VERSION_HEADER: str(version)})


async def _parse(request: Request, model: type[BaseModel]) -> Any:
    try:
        return model.model_validate(await request.json())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise _BadRequest(f"{where}: {first['msg']}", where) from None
    except ValueError as exc:
        raise _BadRequest(f"the body is not JSON: {exc}") from None


class _BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def _usage(s: Sampled) -> dict[str, int]:
    n = len(s.result.completion_ids)
    return {"prompt_tokens": len(s.prompt_ids), "completion_tokens": n, "total_tokens": len(s.prompt_ids) + n}


def build_app(engine: ServeEngine) -> Starlette:
    turns = engine.policy.turns
    tokenizer = turns.tokenizer

    def tokens_text(ids: list[int]) -> list[str]:
        return [tokenizer.decode([i], skip_special_tokens=False) for i in ids]

    def one_choice(req: Any) -> None:
        if req.stream:
            raise _BadRequest("stream: streaming is not supported by traject serve", "stream")
        if getattr(req, "n", 1) != 1:
            raise _BadRequest("n: traject serve answers one choice per request", "n")

    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{
            "id": engine.model_name, "object": "model", "owned_by": "traject", "root": engine.model_name,
            "max_model_len": engine.max_model_len, "policy_version": engine.version}]})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "policy_version": engine.version,
                             "busy_s": engine.policy.busy_s})  # seconds the model spent sampling

    async def completions(request: Request) -> JSONResponse:
        req = await _parse(request, CompletionRequest)
        one_choice(req)
        prompt = req.prompt if isinstance(req.prompt, list) else turns.renderer.encode(req.prompt)
        if not prompt:
            raise _BadRequest("prompt: the prompt is empty", "prompt")
        if max(prompt) >= len(tokenizer) or min(prompt) < 0:
            raise _BadRequest(f"prompt: token ids must lie in [0, {len(tokenizer)})", "prompt")
        s = await engine.sample(prompt, max_tokens=req.max_tokens, params=sampling(req.temperature, req.top_p, req.top_k),
                                seed=req.seed)
        ids = s.result.completion_ids
        choice: dict[str, Any] = {"index": 0, "text": turns.completion_text(ids),
                                  "finish_reason": s.result.finish_reason, "logprobs": None}
        if req.logprobs is not None:
            choice["logprobs"] = {"tokens": tokens_text(ids), "token_logprobs": s.result.logprobs,
                                  "top_logprobs": None, "text_offset": None}
        if req.return_token_ids:
            choice["prompt_token_ids"], choice["token_ids"] = s.prompt_ids, ids
        return _answer({"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                        "model": engine.model_name, "choices": [choice], "usage": _usage(s)}, s.policy_version)

    async def chat(request: Request) -> JSONResponse:
        req = await _parse(request, ChatRequest)
        one_choice(req)
        try:
            messages = messages_from_openai(req.messages)
            tools = tools_from_openai(req.tools)
        except (ValueError, KeyError, TypeError) as exc:
            raise _BadRequest(f"messages: {exc}", "messages") from None
        prompt = turns.prompt(messages, tools)
        s = await engine.sample(prompt.ids, max_tokens=req.max_completion_tokens or req.max_tokens,
                                params=sampling(req.temperature, req.top_p, req.top_k), seed=req.seed)
        ids = s.result.completion_ids
        m = turns.parse(prompt.text, ids)
        calls = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": _json(c.arguments)}}
                 for c in m.tool_calls if c.error is None]
        text = m.text
        bad = [c.raw for c in m.tool_calls if c.error is not None and c.raw]
        if bad:  # a botched call stays in the content, as the model wrote it
            text = "\n".join([text, *bad]) if text else "\n".join(bad)
        message: dict[str, Any] = {"role": "assistant", "content": text or None, "tool_calls": calls}
        if m.reasoning is not None:
            message["reasoning_content"] = m.reasoning
        finish = "tool_calls" if calls and s.result.finish_reason == "stop" else s.result.finish_reason
        choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
        if req.logprobs:
            choice["logprobs"] = {"content": [{"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": []}
                                              for t, lp in zip(tokens_text(ids), s.result.logprobs, strict=True)]}
        body: dict[str, Any] = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
                                "created": int(time.time()), "model": engine.model_name, "choices": [choice],
                                "usage": _usage(s)}
        if req.return_token_ids:
            body["prompt_token_ids"], choice["token_ids"] = s.prompt_ids, ids
        return _answer(body, s.policy_version)

    async def generate(request: Request) -> JSONResponse:
        req = await _parse(request, GenerateRequest)
        if req.stream:
            raise _BadRequest("stream: streaming is not supported by traject serve", "stream")
        sp = req.sampling_params
        s = await engine.sample(req.input_ids, max_tokens=sp.max_new_tokens,
                                params=sampling(sp.temperature, sp.top_p, sp.top_k),
                                seed=sp.sampling_seed if sp.sampling_seed is not None else req.seed)
        ids = s.result.completion_ids
        meta: dict[str, Any] = {"id": uuid.uuid4().hex, "prompt_tokens": len(s.prompt_ids),
                                "completion_tokens": len(ids),
                                "finish_reason": ({"type": "stop", "matched": ids[-1]} if s.result.finish_reason == "stop"
                                                  else {"type": "length", "length": len(ids)})}
        if req.return_logprob:
            meta["output_token_logprobs"] = [[lp, t, None] for t, lp in zip(ids, s.result.logprobs, strict=True)]
        return _answer({"text": turns.completion_text(ids), "output_ids": ids, "meta_info": meta}, s.policy_version)

    async def update_weights(request: Request) -> JSONResponse:
        req = await _parse(request, UpdateWeightsRequest)
        try:
            version = await engine.update_weights(req.model_path, req.policy_version)
        except BadWeights as exc:
            log.warning("weight update refused: %s", exc)
            return _error(str(exc), 400, "model_path")
        log.info("loaded weights from %s: policy version %d", req.model_path, version)
        return _answer({"success": True, "message": f"loaded {req.model_path}"}, version)

    def guarded(handler: Any) -> Any:
        async def endpoint(request: Request) -> JSONResponse:
            try:
                return await handler(request)
            except _BadRequest as exc:
                return _error(str(exc), 400, exc.param)
            except ContextOverflow as exc:
                return _error(str(exc), 400, "max_tokens")
            except Exception as exc:  # noqa: BLE001 - the model failed: a 500 the client may retry
                log.exception("request failed")
                return _error(f"{type(exc).__name__}: {exc}", 500)
        return endpoint

    return Starlette(routes=[
        Route("/v1/models", guarded(models), methods=["GET"]),
        Route("/health", guarded(health), methods=["GET"]),
        Route("/v1/completions", guarded(completions), methods=["POST"]),
        Route("/v1/chat/completions", guarded(chat), methods=["POST"]),
        Route("/generate", guarded(generate), methods=["POST"]),
        Route("/update_weights_from_disk", guarded(update_weights), methods=["POST"]),
    ])


def _json(arguments: Any) -> str:
    import json

    return json.dumps(arguments, ensure_ascii=False)
