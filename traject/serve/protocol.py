"""The request and response bodies ``traject serve`` speaks: the OpenAI subset traject uses,
with vLLM's token-id fields, SGLang's native ``/generate`` form, and the weight update.

Every answer carries ``policy_version``: the number of weight updates the server had applied
when it generated (0 for the weights it started with, or the version the update named).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

POLICY_VERSION_HEADER = "x-policy-version"


class _Lenient(BaseModel):
    # Clients send fields traject does not use (stream_options, user, ...): ignored.
    model_config = ConfigDict(extra="ignore")


class CompletionRequest(_Lenient):
    """``POST /v1/completions``. ``prompt``: token ids (token in) or text."""

    model: str | None = None
    prompt: list[int] | str
    max_tokens: int | None = 16
    temperature: float = Field(1.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = -1
    seed: int | None = None
    logprobs: int | None = None
    return_token_ids: bool = False
    stream: bool = False
    n: int = 1


class ChatRequest(_Lenient):
    """``POST /v1/chat/completions``."""

    model: str | None = None
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float = Field(1.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = -1
    seed: int | None = None
    logprobs: bool = False
    return_token_ids: bool = False
    stream: bool = False
    n: int = 1


class SglangSampling(_Lenient):
    max_new_tokens: int = 128
    temperature: float = Field(1.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = -1
    sampling_seed: int | None = None


class GenerateRequest(_Lenient):
    """``POST /generate``, SGLang's native form: ``input_ids`` in, ``output_ids`` and
    ``meta_info.output_token_logprobs`` out."""

    input_ids: list[int]
    sampling_params: SglangSampling = Field(default_factory=SglangSampling)
    return_logprob: bool = False
    stream: bool = False
    seed: int | None = None


class UpdateWeightsRequest(_Lenient):
    """``POST /update_weights_from_disk`` (SGLang's name for it): load the weights saved at
    ``model_path`` (``save_pretrained``); ``policy_version`` names the new version (default:
    the current one plus 1)."""

    model_path: str
    policy_version: int | None = None


def error_body(message: str, *, status: int = 400, type_: str = "BadRequestError",
               param: str | None = None) -> dict[str, Any]:
    """vLLM's error shape."""
    return {"error": {"message": message, "type": type_, "param": param, "code": status}}
