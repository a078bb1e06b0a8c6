"""HFPolicy: a local Hugging Face transformers model as a token-exact policy.

Each ``act`` renders the prompt with :class:`~traject.agents.chat_renderer.ChatRenderer`
(earlier turns' sampled tokens reused as they are, new messages added as chat-template deltas),
samples a completion, and returns the assistant Message with its Generation: prompt ids,
completion ids (stop token included), and per token the model's logprob at temperature 1 (see
:mod:`traject.agents.hf.sampling`), plus ``policy_version``.

Concurrent ``act`` calls (the G episodes of a group) are gathered into padded batches by a
:class:`~traject.agents.hf.batcher.MicroBatcher` and run in a worker thread; only one batch
runs at a time. Each turn's tokens are drawn from a generator seeded by the episode's seed
(``current_episode().seed``) and the turn index, so an episode is reproducible; float
arithmetic differs slightly between batch shapes, so identical tokens across different batch
compositions are likely but not guaranteed.

A learner that updates the model in place bumps ``policy.version`` after each update and must
not update while ``act`` calls are running; :meth:`HFPolicy.load_weights` instead copies new
weights in between batches (``traject serve``'s weight updates use it). Each Generation
carries the version of the weights that sampled it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import threading
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from traject.agents.hf.batcher import MicroBatcher
from traject.agents.hf.sampling import SampleRequest, SampleResult, SamplingParams, sample_batch
from traject.agents.policy import ContextExhausted, PolicyError, PolicyOutput
from traject.agents.turns import TokenTurns
from traject.episode import current_episode
from traject.types import Message, ToolSchema


class HFPolicyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(1.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0)
    max_new_tokens: int = Field(256, ge=1)
    # How tool calls are written by the model and parsed back.
    tool_format: str = "hermes"
    # "template": tools, calls and results go to the chat template natively; "format": the
    # tool format writes them as text (for templates without tool support).
    tools_in: Literal["template", "format"] = "template"
    max_batch_size: int = Field(16, ge=1)
    batch_wait_s: float = Field(0.01, ge=0.0)
    # Context length; default: the model config's max_position_embeddings.
    max_model_len: int | None = None
    # Seeds turns run outside an episode (no current_episode()).
    seed: int = 0
    device: str | None = None
    dtype: str | None = None
    end_of_turn: str | None = None
    stop_token_ids: list[int] | None = None
    template_kwargs: dict[str, Any] = Field(default_factory=dict)
    chat_template: str | None = None
    reasoning_tags: tuple[str, str] = ("<think>", "</think>")


class HFPolicy:
    """A transformers causal LM and its tokenizer, as a Policy.

    ``model`` is a path (loaded with ``from_pretrained``) or an in-memory model, in which case
    ``tokenizer`` is required. In-memory models are used as they are (device, dtype, weights
    shared with a learner); a loaded one goes to ``config.device`` in ``config.dtype``.
    """

    def __init__(self, model: Any, tokenizer: Any = None, config: HFPolicyConfig | None = None,
                 **kwargs: Any) -> None:
        self.config = config or HFPolicyConfig(**kwargs)
        if isinstance(model, (str, Path)):
            model, tokenizer = _load(Path(model), tokenizer, self.config)
        elif tokenizer is None:
            raise ValueError("HFPolicy(model=<in-memory model>) needs tokenizer=")
        self.model = model
        self.tokenizer = tokenizer
        c = self.config
        self.turns = TokenTurns(tokenizer, tool_format=c.tool_format, tools_in=c.tools_in, end_of_turn=c.end_of_turn,
                                template_kwargs=c.template_kwargs, chat_template=c.chat_template,
                                stop_ids=self._stop_ids(model, tokenizer), reasoning_tags=c.reasoning_tags)
        self.renderer = self.turns.renderer
        self.format = self.turns.format
        self.sampling = SamplingParams(temperature=self.config.temperature, top_p=self.config.top_p,
                                       top_k=self.config.top_k)
        self.stop_ids = self.turns.stop_ids
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.renderer.end_of_turn_id
        self.max_model_len = self.config.max_model_len or int(
            getattr(model.config, "max_position_embeddings", 0) or 2**31)
        self.version = 0
        # Held while a batch samples and while new weights are copied in (both in worker threads).
        self._weights_lock = threading.Lock()
        #: Seconds spent sampling batches (the model's busy time).
        self.busy_s = 0.0
        self._rng = random.Random(self.config.seed)
        self.batcher: MicroBatcher[SampleRequest, SampleResult] = MicroBatcher(
            self._run_batch, max_batch_size=self.config.max_batch_size, wait_s=self.config.batch_wait_s)

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs: Any) -> HFPolicy:
        return cls(path, **kwargs)

    def _stop_ids(self, model: Any, tokenizer: Any) -> set[int] | None:
        """The configured stop ids, else (None) TokenTurns' default plus the model's eos ids."""
        if self.config.stop_token_ids is not None:
            return set(self.config.stop_token_ids)
        eot = self.config.end_of_turn or tokenizer.eos_token
        ids = {tokenizer.convert_tokens_to_ids(eot)} if eot else set()
        if isinstance(tokenizer.eos_token_id, int):
            ids.add(tokenizer.eos_token_id)
        gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        ids |= set(gen_eos) if isinstance(gen_eos, list) else {gen_eos} if isinstance(gen_eos, int) else set()
        return {i for i in ids if isinstance(i, int)}

    def _run_batch(self, requests: list[SampleRequest]) -> list[SampleResult]:
        with self._weights_lock:
            t0 = time.perf_counter()
            was_training = self.model.training
            self.model.eval()
            try:
                results = sample_batch(self.model, requests, self.sampling, stop_ids=self.stop_ids,
                                       pad_id=self.pad_id, vocab_limit=len(self.tokenizer))
            finally:
                self.model.train(was_training)
                self.busy_s += time.perf_counter() - t0
            # The version of the weights that sampled, even if it changes while results travel back.
            return [dataclasses.replace(r, policy_version=self.version) for r in results]

    def load_weights(self, source: Any, version: int) -> None:
        """Copy ``source``'s parameters and buffers (a model of the same architecture, or its
        state dict) into this policy's model and call them ``version``. Blocking: it waits for
        the batch being sampled, so run it in a worker thread from async code."""
        import torch

        state = source.state_dict() if hasattr(source, "state_dict") else source
        own = self.model.state_dict()
        missing = set(own) - set(state)
        if missing:
            raise ValueError(f"load_weights: the source lacks {len(missing)} tensors, e.g. {sorted(missing)[0]}")
        with self._weights_lock, torch.no_grad():
            for name, tensor in own.items():
                tensor.copy_(state[name])
            self.version = version

    def _seed(self, messages: list[Message]) -> int:
        ep = current_episode()
        if ep is None:
            return self._rng.getrandbits(63)
        turn = sum(1 for m in messages if m.role == "assistant")
        digest = hashlib.blake2b(f"{ep.seed}\0{turn}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") >> 1

    async def act(self, messages: list[Message], tools: list[ToolSchema]) -> PolicyOutput:
        t0 = time.perf_counter()
        prompt = self.turns.prompt(messages, tools)
        budget = min(self.config.max_new_tokens, self.max_model_len - len(prompt.ids))
        if budget <= 0:
            raise ContextExhausted(f"the prompt has {len(prompt.ids)} tokens, which fills the model's context of "
                                   f"{self.max_model_len} (HFPolicyConfig.max_model_len)")
        request = SampleRequest(prompt_ids=prompt.ids, max_new_tokens=budget, seed=self._seed(messages))
        try:
            result = await self.batcher.submit(request)
        except Exception as exc:  # noqa: BLE001 - the local model failed: an infra error
            raise PolicyError(f"local generation failed: {type(exc).__name__}: {exc}") from exc
        message = self.turns.message(prompt, result.completion_ids, logprobs=result.logprobs,
                                     finish_reason=result.finish_reason, policy_version=result.policy_version)
        return PolicyOutput(message=message, prompt_tokens=len(prompt.ids),
                            completion_tokens=len(result.completion_ids), latency_s=time.perf_counter() - t0)

    def completion_text(self, completion_ids: list[int]) -> str:
        """The sampled text, without the stop token that ended it."""
        return self.turns.completion_text(completion_ids)

    def to_message(self, prompt_text: str, result: SampleResult) -> Message:
        """Parse a completion into an assistant Message (no Generation attached)."""
        return self.turns.parse(prompt_text, result.completion_ids)


def _load(path: Path, tokenizer: Any, config: HFPolicyConfig) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not path.exists():
        raise FileNotFoundError(f"no model at {path}: pass a directory written by save_pretrained "
                                "(e.g. traject.agents.hf.build_tiny_model(path))")
    dtype = getattr(torch, config.dtype, None) if config.dtype else torch.float32
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"HFPolicyConfig.dtype {config.dtype!r} is not a torch dtype; use e.g. 'float32' or 'bfloat16'")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    if config.device:
        model = model.to(config.device)
    model.eval()
    return model, tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(path)
