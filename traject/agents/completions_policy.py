"""CompletionsPolicy: token in, token out over HTTP.

The prompt is rendered here, with the model's own tokenizer and traject's one token builder
(:class:`~traject.agents.turns.TokenTurns`: earlier turns' sampled ids reused as sampled), and
sent as token ids; the server's sampled ids and logprobs come back and are kept. Text is never
re-tokenised, so the trajectories train exactly as HFPolicy's or veRL's would.

Two request forms (``dialect``):

* ``"vllm"``: ``POST {base_url}/completions`` with ``prompt`` as a list of ids,
  ``return_token_ids: true`` and ``logprobs: 0``; reads ``choices[0].token_ids``,
  ``prompt_token_ids`` and ``logprobs.token_logprobs``. vLLM >= 0.10.2, ``traject serve``, and
  SGLang's ``/v1/completions`` (which has the same fields) speak it.
* ``"sglang"``: SGLang's native ``POST /generate`` with ``input_ids``, ``sampling_params`` and
  ``return_logprob: true``; reads ``meta_info.output_token_logprobs`` (and ``output_ids``).

Requests go through :class:`~traject.agents.openai_policy.OpenAIPolicy`'s transport and
retries. A server that returns no ids: one warning, turns without tokens (eval-only
trajectories). Ids that do not decode to the server's text: the ids are kept and
``Generation.text_mismatch`` says so. HTTP 400 for a prompt beyond the context window:
ContextExhausted (the episode ends truncated and is scored).

>>> policy = CompletionsPolicy(model="tiny", base_url="http://127.0.0.1:8000/v1",   # doctest: +SKIP
...                            tokenizer="/path/to/model")
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from traject.agents.chat_renderer import RenderedPrompt
from traject.agents.openai_policy import OpenAIPolicy, OpenAIPolicyConfig
from traject.agents.policy import ContextExhausted, PolicyError, PolicyOutput
from traject.agents.served_tokens import MissingTokensWarning, field
from traject.agents.turns import TokenTurns
from traject.episode import current_episode
from traject.types import Message, ToolSchema


class CompletionsPolicyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    base_url: str
    # The model's tokenizer: a local path or a name from_pretrained resolves (renders prompts).
    tokenizer: str | None = None
    api_key: str | None = None
    dialect: Literal["vllm", "sglang"] = "vllm"
    temperature: float = Field(1.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(1024, ge=1)
    # The model's context; when set, a prompt that leaves no room ends the episode here
    # (truncated) without asking the server, and max_tokens is clipped to the room left.
    max_model_len: int | None = None
    tool_format: str = "hermes"
    tools_in: Literal["template", "format"] = "template"
    template_kwargs: dict[str, Any] = Field(default_factory=dict)
    chat_template: str | None = None
    end_of_turn: str | None = None
    send_seed: bool = True
    request_timeout_s: float = 120.0
    max_retries: int = 4
    backoff_s: float = 0.5
    backoff_max_s: float = 20.0
    transport: Literal["auto", "sdk", "lean"] = "auto"


class CompletionsPolicy:
    """``tokenizer``: a path or name (as ``config.tokenizer``), or a loaded tokenizer."""

    def __init__(self, config: CompletionsPolicyConfig | None = None, *, tokenizer: Any = None,
                 **kwargs: Any) -> None:
        if isinstance(tokenizer, (str, Path)):
            kwargs["tokenizer"], tokenizer = str(tokenizer), None
        self.config = c = config or CompletionsPolicyConfig(**kwargs)
        if tokenizer is None:
            if c.tokenizer is None:
                raise ValueError("CompletionsPolicy needs the model's tokenizer: tokenizer= (a path or name)")
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(c.tokenizer)
        self.turns = TokenTurns(tokenizer, tool_format=c.tool_format, tools_in=c.tools_in, end_of_turn=c.end_of_turn,
                                template_kwargs=c.template_kwargs, chat_template=c.chat_template)
        base = c.base_url.rstrip("/")
        # The transport talks to the server's root: /generate and /update_weights_from_disk
        # live there, the OpenAI routes under /v1.
        self.api_prefix = "/v1" if base.endswith("/v1") else ""
        base = base[: len(base) - len(self.api_prefix)]
        self.http = OpenAIPolicy(OpenAIPolicyConfig(
            model=c.model, base_url=base, api_key=c.api_key, request_timeout_s=c.request_timeout_s,
            max_retries=c.max_retries, backoff_s=c.backoff_s, backoff_max_s=c.backoff_max_s, transport=c.transport,
            return_token_ids=False))
        self.warn_missing = MissingTokensWarning(base)
        self.mismatches = 0

    @property
    def tokenizer(self) -> Any:
        return self.turns.tokenizer

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> CompletionsPolicy:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def request(self, prompt_ids: list[int], max_tokens: int) -> tuple[str, dict[str, Any]]:
        """The path and body of one request, in the configured dialect."""
        c = self.config
        seed = (ep.seed % (2**31)) if c.send_seed and (ep := current_episode()) is not None else None
        if c.dialect == "sglang":
            body: dict[str, Any] = {"input_ids": prompt_ids, "return_logprob": True, "logprob_start_len": -1,
                                    "sampling_params": {"max_new_tokens": max_tokens, "temperature": c.temperature,
                                                        "top_p": c.top_p, "skip_special_tokens": False}}
            if seed is not None:
                body["sampling_params"]["sampling_seed"] = seed
            return "/generate", body
        body = {"model": c.model, "prompt": prompt_ids, "max_tokens": max_tokens, "temperature": c.temperature,
                "top_p": c.top_p, "logprobs": 0, "return_token_ids": True, "skip_special_tokens": False}
        if seed is not None:
            body["seed"] = seed
        return self.api_prefix + "/completions", body

    async def update_weights(self, model_path: str, policy_version: int | None = None) -> int:
        """Ask the server (``traject serve``, or SGLang) to load the weights saved at
        ``model_path``; returns the policy version it now serves. PolicyError if it refuses."""
        body: dict[str, Any] = {"model_path": model_path}
        if policy_version is not None:
            body["policy_version"] = policy_version
        answer = await self.http.post("/update_weights_from_disk", body)
        version = field(answer, "policy_version")
        if field(answer, "success") is False:
            raise PolicyError(f"the server refused the weights at {model_path!r}: {field(answer, 'message')}")
        return int(version) if version is not None else (policy_version if policy_version is not None else -1)

    def read(self, answer: Any) -> tuple[list[int] | None, list[float] | None, str | None, str | None,
                                         list[int] | None]:
        """(completion ids, logprobs, finish reason, text, prompt ids the server reports) of an answer."""
        if self.config.dialect == "sglang":
            meta = field(answer, "meta_info") or {}
            entries = field(meta, "output_token_logprobs")
            ids = field(answer, "output_ids")
            logprobs = None
            if entries:
                logprobs = [float(e[0]) if e[0] is not None else 0.0 for e in entries]
                ids = [int(e[1]) for e in entries]
            finish = field(field(meta, "finish_reason"), "type")
            return (list(ids) if ids is not None else None), logprobs, finish, field(answer, "text"), None
        choices = field(answer, "choices") or []
        if not choices:
            raise PolicyError("the completions endpoint answered with no choices")
        ch = choices[0]
        ids = field(ch, "token_ids")
        lp = field(field(ch, "logprobs"), "token_logprobs")
        logprobs = [float(v) if v is not None else 0.0 for v in lp] if lp is not None else None
        prompt = field(ch, "prompt_token_ids") or field(answer, "prompt_token_ids")
        return (list(ids) if ids is not None else None), logprobs, field(ch, "finish_reason"), \
            field(ch, "text"), (list(prompt) if prompt else None)

    def prompt(self, messages: list[Message], tools: list[ToolSchema]) -> tuple[RenderedPrompt, int]:
        """The prompt for the next turn and its completion budget (ContextExhausted if none)."""
        prompt = self.turns.prompt(messages, tools)
        max_tokens = self.config.max_tokens
        if self.config.max_model_len is not None:
            room = self.config.max_model_len - len(prompt.ids)
            if room <= 0:
                raise ContextExhausted(f"the prompt has {len(prompt.ids)} tokens; max_model_len is "
                                       f"{self.config.max_model_len}")
            max_tokens = min(max_tokens, room)
        return prompt, max_tokens

    def finish(self, prompt: RenderedPrompt, answer: Any) -> Message:
        """The assistant Message for the server's ``answer`` to ``prompt``: its ids as sampled,
        or (a server that returned none) the text alone, with a warning."""
        ids, logprobs, finish, text, served_prompt = self.read(answer)
        if finish == "abort":
            raise PolicyError("the server aborted the generation")
        if ids is None:
            self.warn_missing("completion token ids")
            return self.turns.parse_text(prompt.text, text or "")
        ids = [int(t) for t in ids]
        if logprobs is not None and len(logprobs) != len(ids):
            logprobs = None
        message = self.turns.message(prompt, ids, logprobs=logprobs, finish_reason=finish)
        g = message.generation
        assert g is not None
        notes = []
        if served_prompt is not None and [int(t) for t in served_prompt] != prompt.ids:
            notes.append(f"the server reports a prompt of {len(served_prompt)} ids for the {len(prompt.ids)} sent")
        if not self._same_text(ids, text):
            notes.append(f"the completion ids do not decode to the server's text {text[:80]!r}")
        version = field(answer, "policy_version")
        if notes:
            self.mismatches += 1
        message.generation = g.model_copy(update={
            "policy_version": int(version) if version is not None else None,
            "text_mismatch": "; ".join(notes) or None})
        return message

    async def act(self, messages: list[Message], tools: list[ToolSchema]) -> PolicyOutput:
        t0 = time.perf_counter()
        prompt, max_tokens = self.prompt(messages, tools)
        path, body = self.request(prompt.ids, max_tokens)
        message = self.finish(prompt, await self.http.post(path, body))
        n = len(message.generation.completion_ids) if message.generation is not None else 0
        return PolicyOutput(message=message, prompt_tokens=len(prompt.ids), completion_tokens=n,
                            latency_s=time.perf_counter() - t0)

    def _same_text(self, ids: list[int], text: str | None) -> bool:
        if text is None:
            return True  # the server sent no text to compare with
        tok = self.turns.tokenizer
        body = ids[:-1] if ids and ids[-1] in self.turns.stop_ids else ids
        return text in (self.turns.completion_text(ids), tok.decode(body, skip_special_tokens=True),
                        tok.decode(ids, skip_special_tokens=False))
