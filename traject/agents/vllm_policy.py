"""VLLMPolicy: an in-process vLLM engine as a traject Policy, for GPU evaluation.

``pip install 'traject[vllm]'`` (the vLLM, torch and transformers versions that
``verl[vllm]==0.9.1`` pins, so one environment serves ``traject eval`` and veRL training).
Serving the model with ``vllm serve`` and pointing the OpenAI policy at it stays the other
documented route; this one keeps the exact tokens: each assistant Message carries the prompt
ids, the sampled ids and their logprobs.

Prompts are built token-in, token-out by IncrementalChatTokens: the first from the chat
template; each later one is the previous prompt, plus the sampled tokens as sampled, plus the
observation messages rendered alone (against a stand-in history) with the template's glue
after the end-of-turn token. Nothing the model sampled is ever re-tokenised.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from typing import Any

from traject.agents.parsers import get_format
from traject.agents.policy import ContextExhausted, PolicyError, PolicyOutput
from traject.types import Generation, Message, ToolSchema

INSTALL_HINT = "VLLMPolicy needs vLLM: pip install 'traject[vllm]'"

_STAND_IN = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]


def _chat(m: Message) -> dict[str, Any]:
    d: dict[str, Any] = {"role": m.role, "content": m.text}
    if m.role == "assistant" and m.tool_calls:
        d["tool_calls"] = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                           for c in m.tool_calls]
    if m.role == "tool":
        d["tool_call_id"] = m.tool_call_id
        d["name"] = m.name
    return d


class IncrementalChatTokens:
    """Token-exact prompts for a multi-turn conversation, from a HF tokenizer's chat template."""

    def __init__(self, tokenizer: Any, *, chat_template_kwargs: dict[str, Any] | None = None) -> None:
        self.tok = tokenizer
        self.kwargs = dict(chat_template_kwargs or {})
        self.eos_text = tokenizer.eos_token or ""

    def render(self, chat: list[dict[str, Any]], tools: list[dict[str, Any]] | None, *, gen: bool) -> str:
        return self.tok.apply_chat_template(chat, tools=tools, tokenize=False, add_generation_prompt=gen,
                                            **self.kwargs)

    def encode(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False))

    def first_prompt(self, chat: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> list[int]:
        return self.encode(self.render(chat, tools, gen=True))

    def observation_tokens(self, new: list[dict[str, Any]], tools: list[dict[str, Any]] | None, *,
                           last_assistant: dict[str, Any], ended_with_eos: bool) -> list[int]:
        """Tokens that follow a sampled assistant turn: the template's glue after its
        end-of-turn token, then ``new`` messages, then the generation prompt."""
        base = [*_STAND_IN, {**last_assistant, "content": "A"}]
        before = self.render(base, tools, gen=False)
        after = self.render(base + new, tools, gen=True)
        if not after.startswith(before):
            raise ValueError("the chat template rewrites earlier turns when messages are appended")
        cut = before.rfind(self.eos_text) if self.eos_text else -1
        glue = before[cut + len(self.eos_text):] if cut >= 0 else ""
        # A turn cut short (length) never emitted its end-of-turn token: close it as context.
        return self.encode(("" if ended_with_eos else self.eos_text) + glue + after[len(before):])


class VLLMPolicy:
    def __init__(self, model: str, *, tool_format: str = "hermes", temperature: float = 1.0,
                 top_p: float = 1.0, max_tokens: int = 2048, max_model_len: int | None = None,
                 gpu_memory_utilization: float = 0.85, tensor_parallel_size: int = 1, seed: int = 0,
                 chat_template_kwargs: dict[str, Any] | None = None, engine_kwargs: dict[str, Any] | None = None,
                 ) -> None:
        try:
            from vllm import AsyncEngineArgs
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as exc:
            raise ImportError(f"{INSTALL_HINT} ({exc})") from exc
        from transformers import AutoTokenizer

        self.model = model
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.chat = IncrementalChatTokens(self.tokenizer, chat_template_kwargs=chat_template_kwargs)
        self.format = get_format(tool_format)
        self.temperature, self.top_p, self.max_tokens, self.seed = temperature, top_p, max_tokens, seed
        args = AsyncEngineArgs(model=model, max_model_len=max_model_len, seed=seed,
                               gpu_memory_utilization=gpu_memory_utilization,
                               tensor_parallel_size=tensor_parallel_size, **(engine_kwargs or {}))
        self.engine = AsyncLLM.from_engine_args(args)
        self.max_model_len = int(self.engine.model_config.max_model_len)
        self.stop_ids = {t for t in (self.tokenizer.eos_token_id, self.tokenizer.pad_token_id) if t is not None}
        # id(last assistant Message returned) -> (that Message, token ids so far); bounded, since
        # nothing says when a conversation ends.
        self._state: OrderedDict[int, tuple[Message, list[int]]] = OrderedDict()
        self.max_conversations = 4096

    def _prompt(self, messages: list[Message], tools: list[dict[str, Any]] | None) -> list[int]:
        # A conversation this policy continues has, as its last assistant message, the very
        # Message it returned last time (the agent loop appends exactly that object).
        n = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "assistant"), None)
        entry = self._state.pop(id(messages[n]), None) if n is not None else None
        if entry is not None and entry[0] is messages[n] and n < len(messages) - 1:
            last, ids = entry
            assert last.generation is not None
            ended = bool(last.generation.completion_ids) and last.generation.completion_ids[-1] in self.stop_ids
            new = [_chat(m) for m in messages[n + 1:]]
            return ids + self.chat.observation_tokens(new, tools, last_assistant=_chat(last), ended_with_eos=ended)
        return self.chat.first_prompt([_chat(m) for m in messages], tools)

    async def act(self, messages: list[Message], tools: list[ToolSchema]) -> PolicyOutput:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        t0 = time.perf_counter()
        schemas = [t.to_openai() for t in tools] or None
        prompt = self._prompt(messages, schemas)
        room = min(self.max_tokens, self.max_model_len - len(prompt))
        if room <= 0:
            raise ContextExhausted(f"the prompt has {len(prompt)} tokens; max_model_len is {self.max_model_len}")
        params = SamplingParams(temperature=self.temperature, top_p=self.top_p, max_tokens=room, logprobs=0)
        final = None
        try:
            async for out in self.engine.generate(prompt=TokensPrompt(prompt_token_ids=prompt),
                                                  sampling_params=params, request_id=uuid.uuid4().hex):
                final = out
        except Exception as exc:  # noqa: BLE001 - the engine failed, not the agent
            raise PolicyError(f"vLLM generate failed: {type(exc).__name__}: {exc}") from exc
        if final is None or not final.outputs:
            raise PolicyError("vLLM returned no output (the request was aborted)")
        o = final.outputs[0]
        ids = list(o.token_ids)
        logprobs = [lp[t].logprob for t, lp in zip(ids, o.logprobs, strict=True)] if o.logprobs else None
        body = ids[:-1] if ids and ids[-1] in self.stop_ids else ids
        text = self.tokenizer.decode(body, skip_special_tokens=True)
        reasoning = None
        if "</think>" in text:
            head, _, text = text.partition("</think>")
            reasoning, text = head.replace("<think>", "").strip(), text.lstrip("\n")
        parsed = self.format.parse(text)
        message = Message.assistant(parsed.content, tool_calls=parsed.tool_calls, reasoning=reasoning,
                                    generation=Generation(prompt_ids=prompt, completion_ids=ids, logprobs=logprobs,
                                                          finish_reason=o.finish_reason))
        self._state[id(message)] = (message, prompt + ids)
        while len(self._state) > self.max_conversations:
            self._state.popitem(last=False)
        return PolicyOutput(message=message, prompt_tokens=len(prompt), completion_tokens=len(ids),
                            latency_s=time.perf_counter() - t0)

    def shutdown(self) -> None:
        self.engine.shutdown()
