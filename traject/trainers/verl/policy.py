"""VerlServerPolicy: a traject Policy over veRL's ``server_manager.generate``.

Token in, token out. The first prompt is rendered by veRL's Continuous Token builder; each
later prompt is the previous prompt plus the tokens the model sampled (as sampled, never
re-tokenised) plus the rendered observation messages (tool results, user turns), merged by the
same builder so that model-family boundary rules (Qwen's newline after ``<|im_end|>``...) are
veRL's own. Every assistant Message carries a Generation with the prompt ids, the sampled ids
and their logprobs, from which traject builds the TokenView.

One instance serves one trajectory: it keeps one ``request_id`` for all turns (veRL's sticky
session routes them to the same server and its prefix cache).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from traject.agents.parsers import get_format
from traject.agents.policy import ContextExhausted, PolicyError, PolicyOutput
from traject.trainers.verl.chat import chat_dict
from traject.types import Generation, InfraError, Message, ToolSchema

ImageHook = Callable[[list[Any]], Awaitable[list[Any]]]


class PromptTooLong(InfraError):
    """The env's first prompt does not fit veRL's ``data.max_prompt_length``: the task cannot
    run under this config, so its trajectory is kept out of training (and logged)."""


class VerlServerPolicy:
    def __init__(
        self,
        *,
        server_manager: Any,
        builder: Any,
        tokenizer: Any,
        request_id: str,
        sampling_params: dict[str, Any],
        prompt_length: int,
        response_length: int,
        tool_format: str = "hermes",
        prepare_images: ImageHook | None = None,
        generate_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.server_manager = server_manager
        self.builder = builder
        self.tokenizer = tokenizer
        self.request_id = request_id
        self.sampling_params = dict(sampling_params)
        self.prompt_length = prompt_length
        self.response_length = response_length
        self.format = get_format(tool_format)
        self.prepare_images = prepare_images
        self.generate_kwargs = dict(generate_kwargs or {})
        self.stop_ids = {t for t in (tokenizer.eos_token_id, tokenizer.pad_token_id) if t is not None}
        # Conversation state of the trajectory.
        self._chat: list[dict[str, Any]] = []
        self.images: list[Any] = []
        self._runtime: list[int] | None = None   # prompt + sampled tokens of the last turn
        self._chat_at_runtime = 0                # how many chat dicts ``_runtime`` covers
        self._last_message: Message | None = None
        self._segment_start = 0                  # length of the current segment's first prompt
        self.segments = 0

    async def _extend_chat(self, messages: list[Message]) -> None:
        new_images: list[Any] = []
        for m in messages[len(self._chat):]:
            d, imgs = chat_dict(m)
            self._chat.append(d)
            new_images.extend(imgs)
        if new_images:
            if self.prepare_images is not None:
                new_images = await self.prepare_images(new_images)
            self.images.extend(new_images)

    def _continues(self, messages: list[Message]) -> bool:
        """Whether ``messages`` extend the conversation this policy last answered."""
        return (self._runtime is not None and self._last_message is not None
                and len(messages) >= self._chat_at_runtime
                and messages[self._chat_at_runtime - 1] is self._last_message)

    async def _prompt(self, messages: list[Message], tools: list[dict[str, Any]] | None) -> list[int]:
        if self._continues(messages):
            previous, updated, runtime = self._chat[: self._chat_at_runtime], list(self._chat), self._runtime
            merged = await anyio.to_thread.run_sync(
                lambda: self.builder.merge_context_tokens(previous, updated, runtime, tools=tools))
            prompt = list(merged.token_ids)
            if prompt[: len(runtime)] != runtime:
                # The builder rewrote the prefix: a new prefix-consistent segment starts here.
                self._segment_start = len(prompt)
                self.segments += 1
            return prompt
        # First turn, or a conversation this policy did not produce: render it whole.
        chat = list(self._chat)
        images = list(self.images) or None
        prompt = list(await anyio.to_thread.run_sync(
            lambda: self.builder.build_initial_tokens(chat, tools=tools, images=images)))
        if len(prompt) > self.prompt_length:
            raise PromptTooLong(f"the first prompt has {len(prompt)} tokens, more than "
                                f"data.max_prompt_length={self.prompt_length}: raise max_prompt_length")
        self._segment_start = len(prompt)
        self.segments += 1
        return prompt

    async def act(self, messages: list[Message], tools: list[ToolSchema]) -> PolicyOutput:
        t0 = time.perf_counter()
        if self._runtime is not None and not self._continues(messages):
            self._chat, self.images, self._runtime, self._chat_at_runtime = [], [], None, 0
        await self._extend_chat(messages)
        schemas = [t.to_openai() for t in tools] or None
        prompt = await self._prompt(messages, schemas)
        budget = self.response_length - (len(prompt) - self._segment_start)
        if budget <= 0:
            raise ContextExhausted(f"the response budget (data.max_response_length="
                                   f"{self.response_length}) is spent")
        params = {**self.sampling_params, "max_tokens": budget}
        try:
            out = await self.server_manager.generate(
                request_id=self.request_id, prompt_ids=prompt, sampling_params=params,
                image_data=list(self.images) or None, **self.generate_kwargs)
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
        if ids and ids[-1] in self.stop_ids:
            finish = finish or "stop"
        elif len(ids) >= budget:
            finish = "length"
        message = self._message(ids)
        message.generation = Generation(prompt_ids=prompt, completion_ids=ids, logprobs=logprobs,
                                        finish_reason=finish)
        merged = self.builder.merge_assistant_tokens(prompt, ids)
        self._runtime = list(merged.token_ids)
        self._chat.append(chat_dict(message)[0])
        self._chat_at_runtime = len(self._chat)
        self._last_message = message
        return PolicyOutput(message=message, prompt_tokens=len(prompt), completion_tokens=len(ids),
                            latency_s=time.perf_counter() - t0)

    def _message(self, ids: list[int]) -> Message:
        """Parse the sampled tokens into an assistant message (decoding, not re-tokenising)."""
        body = ids[:-1] if ids and ids[-1] in self.stop_ids else ids
        text = self.tokenizer.decode(body, skip_special_tokens=True)
        reasoning = None
        if "</think>" in text:
            head, _, text = text.partition("</think>")
            reasoning = head.replace("<think>", "").strip()
            text = text.lstrip("\n")
        parsed = self.format.parse(text)
        return Message.assistant(parsed.content, tool_calls=parsed.tool_calls, reasoning=reasoning)
