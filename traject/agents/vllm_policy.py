"""VLLMPolicy: an in-process vLLM engine as a traject Policy, for GPU evaluation.

``pip install 'traject[vllm]'`` (the vLLM, torch and transformers versions that
``verl[vllm]==0.9.1`` pins, so one environment serves ``traject eval`` and veRL training).
Serving the model (``vllm serve``, ``traject serve``) and pointing
:class:`~traject.agents.completions_policy.CompletionsPolicy` at it is the other route to the
same tokens.

Prompts come from :class:`~traject.agents.turns.TokenTurns` (the one token builder,
ChatRenderer) and sampled ids are decoded and parsed there too: the engine only samples. The
token path (``prompt``/``finish``) needs no vLLM, so it is tested on CPU.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from traject.agents.chat_renderer import RenderedPrompt
from traject.agents.policy import ContextExhausted, PolicyError, PolicyOutput
from traject.agents.turns import TokenTurns
from traject.types import Message, ToolSchema

INSTALL_HINT = "VLLMPolicy needs vLLM: pip install 'traject[vllm]'"


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
        self.turns = TokenTurns(AutoTokenizer.from_pretrained(model), tool_format=tool_format,
                                template_kwargs=chat_template_kwargs)
        self.temperature, self.top_p, self.max_tokens, self.seed = temperature, top_p, max_tokens, seed
        args = AsyncEngineArgs(model=model, max_model_len=max_model_len, seed=seed,
                               gpu_memory_utilization=gpu_memory_utilization,
                               tensor_parallel_size=tensor_parallel_size, **(engine_kwargs or {}))
        self.engine = AsyncLLM.from_engine_args(args)
        self.max_model_len = int(self.engine.model_config.max_model_len)

    @classmethod
    def without_engine(cls, tokenizer: Any, *, max_model_len: int, max_tokens: int = 2048,
                       tool_format: str = "hermes", chat_template_kwargs: dict[str, Any] | None = None,
                       ) -> VLLMPolicy:
        """The token path alone (``prompt``, ``finish``), without vLLM: what the engine would be
        given and how its output becomes a Message. ``act`` needs the engine."""
        self = cls.__new__(cls)
        self.model = getattr(tokenizer, "name_or_path", "")
        self.turns = TokenTurns(tokenizer, tool_format=tool_format, template_kwargs=chat_template_kwargs)
        self.temperature, self.top_p, self.max_tokens, self.seed = 1.0, 1.0, max_tokens, 0
        self.engine = None
        self.max_model_len = max_model_len
        return self

    @property
    def tokenizer(self) -> Any:
        return self.turns.tokenizer

    def prompt(self, messages: list[Message], tools: list[ToolSchema]) -> tuple[RenderedPrompt, int]:
        """The prompt for the next turn and its token budget; ContextExhausted if none is left."""
        prompt = self.turns.prompt(messages, tools)
        room = min(self.max_tokens, self.max_model_len - len(prompt.ids))
        if room <= 0:
            raise ContextExhausted(f"the prompt has {len(prompt.ids)} tokens; max_model_len is {self.max_model_len}")
        return prompt, room

    def finish(self, prompt: RenderedPrompt, output: Any) -> Message:
        """The assistant Message for one vLLM ``CompletionOutput`` (token ids as sampled)."""
        ids = list(output.token_ids)
        logprobs = [lp[t].logprob for t, lp in zip(ids, output.logprobs, strict=True)] if output.logprobs else None
        return self.turns.message(prompt, ids, logprobs=logprobs, finish_reason=output.finish_reason)

    async def act(self, messages: list[Message], tools: list[ToolSchema]) -> PolicyOutput:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        if self.engine is None:
            raise RuntimeError("this VLLMPolicy was made without_engine: it has no engine to sample with")
        t0 = time.perf_counter()
        prompt, room = self.prompt(messages, tools)
        params = SamplingParams(temperature=self.temperature, top_p=self.top_p, max_tokens=room, logprobs=0)
        final = None
        try:
            async for out in self.engine.generate(prompt=TokensPrompt(prompt_token_ids=prompt.ids),
                                                  sampling_params=params, request_id=uuid.uuid4().hex):
                final = out
        except Exception as exc:  # noqa: BLE001 - the engine failed, not the agent
            raise PolicyError(f"vLLM generate failed: {type(exc).__name__}: {exc}") from exc
        if final is None or not final.outputs:
            raise PolicyError("vLLM returned no output (the request was aborted)")
        message = self.finish(prompt, final.outputs[0])
        assert message.generation is not None
        return PolicyOutput(message=message, prompt_tokens=len(prompt.ids),
                            completion_tokens=len(message.generation.completion_ids),
                            latency_s=time.perf_counter() - t0)

    def shutdown(self) -> None:
        self.engine.shutdown()
