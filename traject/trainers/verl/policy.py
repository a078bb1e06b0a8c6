"""VerlServerPolicy: a traject Policy over veRL's ``server_manager.generate``.

Token in, token out, through traject's one token builder
(:class:`~traject.agents.turns.TokenTurns`, i.e. ChatRenderer): the first prompt is the chat
template's rendering; each later prompt is the previous prompt plus the tokens the model
sampled (as sampled, never re-tokenised) plus the template's delta for the observation
messages. So a conversation gets the same ids here as under HFPolicy, VLLMPolicy or an HTTP
server. Where the template rewrites history the prompt is rendered fresh and a new
prefix-consistent segment starts. Every assistant Message carries a Generation with the prompt
ids, the sampled ids and their logprobs, from which traject builds the TokenView(s).

One instance serves one trajectory: it keeps one ``request_id`` for all turns (veRL's sticky
session routes them to the same server and its prefix cache).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from traject.agents.policy import ContextExhausted, PolicyError, PolicyOutput
from traject.agents.turns import TokenTurns
from traject.trainers.verl.chat import decode_image
from traject.types import InfraError, Message, ToolSchema

ImageHook = Callable[[list[Any]], Awaitable[list[Any]]]


class PromptTooLong(InfraError):
    """The env's first prompt does not fit veRL's ``data.max_prompt_length``: the task cannot
    run under this config, so its trajectory is kept out of training (and logged)."""


class VerlServerPolicy:
    def __init__(
        self,
        *,
        server_manager: Any,
        tokenizer: Any,
        request_id: str,
        sampling_params: dict[str, Any],
        prompt_length: int,
        response_length: int,
        tool_format: str = "hermes",
        template_kwargs: dict[str, Any] | None = None,
        processor: Any = None,
        prepare_images: ImageHook | None = None,
        generate_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.server_manager = server_manager
        self.tokenizer = tokenizer
        self.request_id = request_id
        self.sampling_params = dict(sampling_params)
        self.prompt_length = prompt_length
        self.response_length = response_length
        stop_ids = {t for t in (tokenizer.eos_token_id, tokenizer.pad_token_id) if isinstance(t, int)}
        self.turns = TokenTurns(tokenizer, tool_format=tool_format, template_kwargs=template_kwargs,
                                processor=processor, stop_ids=stop_ids)
        self.prepare_images = prepare_images
        self.generate_kwargs = dict(generate_kwargs or {})
        # The trajectory's images, prepared for the processor, one per ImagePart so far.
        self.images: list[Any] = []
        self._last_message: Message | None = None
        self._segment_start = 0                  # length of the current segment's first prompt
        self.segments = 0

    async def _images(self, messages: list[Message]) -> list[Any] | None:
        parts = [p for m in messages for p in m.images]
        if len(parts) > len(self.images):
            new = [decode_image(p) for p in parts[len(self.images):]]
            if self.prepare_images is not None:
                new = await self.prepare_images(new)
            self.images.extend(new)
        return list(self.images) if parts else None

    async def act(self, messages: list[Message], tools: list[ToolSchema]) -> PolicyOutput:
        t0 = time.perf_counter()
        if self._last_message is not None and not any(m is self._last_message for m in messages):
            # A conversation this policy did not produce: start over.
            self.images, self.segments, self._segment_start = [], 0, 0
        images = await self._images(messages)
        prompt = await anyio.to_thread.run_sync(lambda: self.turns.prompt(messages, tools, images=images))
        if prompt.reused == 0:
            if self.segments == 0 and len(prompt.ids) > self.prompt_length:
                raise PromptTooLong(f"the first prompt has {len(prompt.ids)} tokens, more than "
                                    f"data.max_prompt_length={self.prompt_length}: raise max_prompt_length")
            # First turn, or the template rewrote history: a new prefix-consistent segment.
            self._segment_start = len(prompt.ids)
            self.segments += 1
        budget = self.response_length - (len(prompt.ids) - self._segment_start)
        if budget <= 0:
            raise ContextExhausted(f"the response budget (data.max_response_length="
                                   f"{self.response_length}) is spent")
        params = {**self.sampling_params, "max_tokens": budget}
        try:
            out = await self.server_manager.generate(
                request_id=self.request_id, prompt_ids=prompt.ids, sampling_params=params,
                image_data=images, **self.generate_kwargs)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:  # noqa: BLE001 - the rollout server failed, not the agent
            raise PolicyError(f"veRL generate failed: {type(exc).__name__}: {exc}") from exc
        if out.stop_reason == "aborted":
            raise PolicyError("veRL aborted the generation (server shutting down or weights syncing)")
        ids = [int(t) for t in out.token_ids]
        if len(ids) > budget:
            raise PolicyError(f"the server returned {len(ids)} tokens for max_tokens={budget}")
        logprobs = [float(x) for x in out.log_probs] if out.log_probs is not None else None
        finish = out.stop_reason
        if ids and ids[-1] in self.turns.stop_ids:
            finish = finish or "stop"
        elif len(ids) >= budget:
            finish = "length"
        message = self.turns.message(prompt, ids, logprobs=logprobs, finish_reason=finish)
        self._last_message = message
        return PolicyOutput(message=message, prompt_tokens=len(prompt.ids), completion_tokens=len(ids),
                            latency_s=time.perf_counter() - t0)
