"""ServeEngine: a local HF model behind ``traject serve``.

It holds an :class:`~traject.agents.hf.HFPolicy` and uses its parts: the batcher (concurrent
requests become one padded batch), the sampler (ids and temperature-1 logprobs), and its
TokenTurns (ChatRenderer prompts, tool-call parsing in the configured format). Weight updates
load a checkpoint fully and check it (every tensor present, same shapes) before
:meth:`HFPolicy.load_weights` copies it in between batches, so a bad path leaves the old
weights serving.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from traject.agents.hf import HFPolicy
from traject.agents.hf.sampling import SampleRequest, SampleResult, SamplingParams
from traject.types import Message, ToolCall, ToolSchema


class ContextOverflow(ValueError):
    """The request does not fit the model's context window (HTTP 400)."""


class BadWeights(ValueError):
    """A weight update that cannot be applied (HTTP 400); the old weights keep serving."""


@dataclass(frozen=True)
class Sampled:
    prompt_ids: list[int]
    result: SampleResult
    policy_version: int


def sampling(temperature: float, top_p: float, top_k: int) -> SamplingParams:
    return SamplingParams(temperature=temperature, top_p=top_p, top_k=max(top_k, 0))


def messages_from_openai(messages: list[dict[str, Any]]) -> list[Message]:
    """Chat API messages as traject Messages (text content; tool calls with JSON arguments)."""
    out: list[Message] = []
    for i, m in enumerate(messages):
        role = m.get("role")
        content = m.get("content") or ""
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if role == "assistant":
            calls = []
            for c in m.get("tool_calls") or []:
                fn = c.get("function") or {}
                args = fn.get("arguments") or {}
                if isinstance(args, str):
                    try:
                        args = json.loads(args) if args.strip() else {}
                    except json.JSONDecodeError:
                        calls.append(ToolCall(name=fn.get("name") or "", raw=args, error="arguments are not JSON"))
                        continue
                calls.append(ToolCall(id=c.get("id") or f"call_{i}_{len(calls)}", name=fn.get("name") or "",
                                      arguments=args if isinstance(args, dict) else {}))
            out.append(Message.assistant(content, tool_calls=calls,
                                         reasoning=m.get("reasoning_content") or m.get("reasoning")))
        elif role == "tool":
            out.append(Message.tool(content, tool_call_id=m.get("tool_call_id") or "", name=m.get("name") or ""))
        elif role in ("system", "user"):
            out.append(Message(role=role, content=content))
        else:
            raise ValueError(f"messages[{i}]: unknown role {role!r}")
    return out


def tools_from_openai(tools: list[dict[str, Any]] | None) -> list[ToolSchema]:
    out = []
    for t in tools or []:
        fn = t.get("function", t)
        out.append(ToolSchema(name=fn["name"], description=fn.get("description") or "",
                              parameters=fn.get("parameters") or {"type": "object", "properties": {}}))
    return out


class ServeEngine:
    def __init__(self, policy: HFPolicy, *, model_name: str) -> None:
        self.policy = policy
        self.model_name = model_name
        self._rng = random.Random(0)

    @classmethod
    def load(cls, path: str | Path, *, model_name: str | None = None, **config: Any) -> ServeEngine:
        policy = HFPolicy.from_pretrained(path, **config)
        return cls(policy, model_name=model_name or str(path))

    @property
    def version(self) -> int:
        return self.policy.version

    @property
    def max_model_len(self) -> int:
        return self.policy.max_model_len

    def check_fits(self, n_prompt: int, max_tokens: int | None) -> int:
        """The completion budget; ContextOverflow, worded as vLLM words it, if none is left."""
        limit = self.max_model_len
        wanted = max_tokens if max_tokens is not None else max(limit - n_prompt, 0)
        if n_prompt + max(wanted, 1) > limit:
            raise ContextOverflow(
                f"This model's maximum context length is {limit} tokens. However, you requested "
                f"{n_prompt + wanted} tokens ({n_prompt} in the messages, {wanted} in the completion). "
                "Please reduce the length of the messages or completion.")
        return wanted

    async def sample(self, prompt_ids: list[int], *, max_tokens: int | None, params: SamplingParams,
                     seed: int | None) -> Sampled:
        budget = self.check_fits(len(prompt_ids), max_tokens)
        request = SampleRequest(prompt_ids=list(prompt_ids), max_new_tokens=budget,
                                seed=seed if seed is not None else self._rng.getrandbits(63), params=params)
        result = await self.policy.batcher.submit(request)
        assert result.policy_version is not None
        return Sampled(list(prompt_ids), result, result.policy_version)

    async def update_weights(self, model_path: str, version: int | None) -> int:
        """Load ``model_path``'s weights; the new policy version. BadWeights leaves the old ones."""
        path = Path(model_path)
        if not path.is_dir():
            raise BadWeights(f"model_path {model_path!r} is not a directory (a save_pretrained checkpoint)")
        state = await _read_state(path)
        current = self.policy.model.state_dict()
        embed = state.get("model.embed_tokens.weight")
        if "lm_head.weight" in current and "lm_head.weight" not in state and embed is not None:
            state["lm_head.weight"] = embed  # tied embeddings are saved once
        missing = sorted(set(current) - set(state))
        if missing:
            raise BadWeights(f"the checkpoint at {model_path!r} lacks {len(missing)} tensors of the served "
                             f"model (first: {missing[0]})")
        wrong = [k for k in current if tuple(state[k].shape) != tuple(current[k].shape)]
        if wrong:
            raise BadWeights(f"the checkpoint at {model_path!r} has tensors of other shapes than the served "
                             f"model (first: {wrong[0]} {tuple(state[wrong[0]].shape)} vs "
                             f"{tuple(current[wrong[0]].shape)}): is it the same architecture?")
        new_version = version if version is not None else self.policy.version + 1
        # Copied in between batches (HFPolicy's weights lock): no batch samples with half-loaded
        # weights or a stale version.
        await anyio.to_thread.run_sync(self.policy.load_weights, state, new_version)
        return new_version


async def _read_state(path: Path) -> dict[str, Any]:
    def read() -> dict[str, Any]:
        import torch

        files = sorted(path.glob("*.safetensors"))
        if files:
            from safetensors.torch import load_file

            state: dict[str, Any] = {}
            for f in files:
                state.update(load_file(str(f)))
            return state
        bins = sorted(path.glob("pytorch_model*.bin"))
        if bins:
            state = {}
            for f in bins:
                state.update(torch.load(f, map_location="cpu", weights_only=True))
            return state
        raise BadWeights(f"no *.safetensors or pytorch_model*.bin weights in {str(path)!r}")

    try:
        return await anyio.to_thread.run_sync(read)
    except BadWeights:
        raise
    except Exception as exc:  # noqa: BLE001 - a corrupt or unreadable file: the client's bad input
        raise BadWeights(f"cannot read the weights in {str(path)!r}: {type(exc).__name__}: {exc}") from exc
