"""Policies by kind, from a PolicyConfig: the extension point for ``traject eval --policy``.

Built in: ``openai`` (OpenAIPolicy), ``completions`` (CompletionsPolicy: token in, token out;
the target is the model's tokenizer), ``scripted`` (a Python object named ``module:attr``),
``hf`` (a local HF transformers model, through ``traject.agents.hf_policy.HFPolicy`` where that
module is installed) and ``gold`` (customer_service's gold replay, with ``user=gold``). Plugins
add kinds through the ``traject.policies`` entry-point group: an entry point names a function
``(PolicyConfig) -> Policy``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from traject.agents.policy import Policy
from traject.agents.scripted import ScriptedPolicy
from traject.eval.config import ConfigError, PolicyConfig
from traject.types import Message

PolicyFactory = Callable[[PolicyConfig], Policy]
ENTRY_POINT_GROUP = "traject.policies"
_kinds: dict[str, PolicyFactory] = {}


def register_policy_kind(kind: str, factory: PolicyFactory) -> None:
    _kinds[kind] = factory


def make_policy(cfg: PolicyConfig) -> Policy:
    factory = _kinds.get(cfg.kind)
    if factory is None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == cfg.kind:
                factory = ep.load()
                break
    if factory is None:
        known = sorted({*_kinds, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})
        raise ConfigError(f"policy kind {cfg.kind!r} is unknown; known kinds: {', '.join(known)}")
    return factory(cfg)


def _openai(cfg: PolicyConfig) -> Policy:
    from traject.agents.openai_policy import OpenAIPolicy, OpenAIPolicyConfig

    if not cfg.model:
        raise ConfigError("policy 'openai' needs a model name: pass --model NAME")
    return OpenAIPolicy(OpenAIPolicyConfig(
        model=cfg.model, base_url=cfg.base_url or os.environ.get("OPENAI_BASE_URL"),
        api_key=os.environ.get(cfg.api_key_env), temperature=cfg.temperature,
        max_tokens=cfg.max_tokens, tool_format=cfg.tool_format, max_retries=cfg.max_retries,
        request_timeout_s=cfg.request_timeout_s, **cfg.options,
    ))


def load_object(target: str) -> Any:
    """``package.module:attribute`` (dots allowed in the attribute path)."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{target!r}: expected 'package.module:attribute', e.g. 'my_pkg.agents:solve'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{target!r}: cannot import module {module_name!r}: {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"{target!r}: module {module_name!r} has no attribute {attr!r}") from None
    return obj


def _scripted(cfg: PolicyConfig) -> Policy:
    if not cfg.target:
        raise ConfigError("policy 'scripted' needs a target: --policy scripted:package.module:attribute")
    obj = load_object(cfg.target)
    if isinstance(obj, type):
        obj = obj(**cfg.options)
    if isinstance(obj, Policy):
        return obj
    if isinstance(obj, (list, tuple)) and all(isinstance(m, Message) for m in obj):
        return ScriptedPolicy(list(obj))
    if callable(obj):
        return ScriptedPolicy(obj)
    raise ConfigError(f"{cfg.target!r} is a {type(obj).__name__}: a scripted policy must be a Policy, "
                      "a Policy class, a list of Messages or a function (messages, tools) -> Message")


def _hf(cfg: PolicyConfig) -> Policy:
    """``traject.agents.hf.HFPolicy.from_pretrained(path, **options)``: ``options`` are
    HFPolicyConfig fields; temperature, max_tokens (as max_new_tokens) and tool_format come
    from the PolicyConfig unless ``options`` names them."""
    if not cfg.target:
        raise ConfigError("policy 'hf' needs a model path: --policy hf:/path/to/model")
    module = None
    errors = []
    for name in ("traject.agents.hf", "traject.agents.hf_policy"):
        try:
            module = importlib.import_module(name)
            break
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
    if module is None or not hasattr(module, "HFPolicy"):
        raise ConfigError("policy 'hf' is not available in this installation (" + "; ".join(errors) +
                          "); it needs torch and transformers") from None
    cls = module.HFPolicy
    options = dict(cfg.options)
    options.setdefault("temperature", cfg.temperature)
    if cfg.max_tokens is not None:
        options.setdefault("max_new_tokens", cfg.max_tokens)
    if cfg.tool_format is not None:
        options.setdefault("tool_format", cfg.tool_format)
    from pathlib import Path

    if not Path(cfg.target).exists():
        raise ConfigError(f"--policy hf:{cfg.target}: no model there; pass a directory written by "
                          "save_pretrained (e.g. traject.agents.hf.build_tiny_model(path))")
    from_pretrained = getattr(cls, "from_pretrained", None)
    return from_pretrained(cfg.target, **options) if from_pretrained else cls(cfg.target, **options)  # type: ignore[no-any-return]


def _completions(cfg: PolicyConfig) -> Policy:
    """CompletionsPolicy (token in, token out): ``target`` is the model's tokenizer (a path or
    name); ``options`` are CompletionsPolicyConfig fields (``dialect: sglang``...)."""
    from traject.agents.completions_policy import CompletionsPolicy

    if not cfg.target or not cfg.model or not cfg.base_url:
        raise ConfigError("policy 'completions' needs the model's tokenizer, name and server: "
                          "--policy completions:/path/to/model --model NAME --base-url http://HOST:PORT/v1")
    options: dict[str, Any] = {"temperature": cfg.temperature, "max_retries": cfg.max_retries,
                               "request_timeout_s": cfg.request_timeout_s, "api_key": os.environ.get(cfg.api_key_env)}
    if cfg.max_tokens is not None:
        options["max_tokens"] = cfg.max_tokens
    if cfg.tool_format is not None:
        options["tool_format"] = cfg.tool_format
    return CompletionsPolicy(model=cfg.model, base_url=cfg.base_url, tokenizer=cfg.target,
                             **{**options, **cfg.options})


def _gold(cfg: PolicyConfig) -> Policy:
    """The customer-service gold replay (``traject.environments.customer_service.gold``)."""
    from traject.environments.customer_service.gold import GoldPolicy

    return GoldPolicy()


register_policy_kind("openai", _openai)
register_policy_kind("completions", _completions)
register_policy_kind("scripted", _scripted)
register_policy_kind("hf", _hf)
register_policy_kind("gold", _gold)
