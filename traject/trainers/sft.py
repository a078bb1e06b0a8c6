"""SFT warm start: next-token loss on the assistant's tokens only.

Demonstrations come from a ScriptedPolicy run through an env (``source: scripted``) or from a
JSONL file of conversations in OpenAI chat format with tool calls (``source: jsonl``). Either
way each conversation is rendered by the policy's own :class:`ChatRenderer`
(``render_supervised``), so the model is trained on exactly the prompts it later sees when it
samples; the mask is 1 on assistant turns only, so system, user and tool tokens are never
trained on.

A JSONL line looks like::

    {"messages": [{"role": "user", "content": "How much is 1 fig?"},
                  {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function",
                       "function": {"name": "lookup", "arguments": "{\\"item\\": \\"fig\\"}"}}]},
                  {"role": "tool", "tool_call_id": "c1", "content": "7"},
                  {"role": "assistant", "content": "It costs 7."}],
     "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {...}}}]}
"""

from __future__ import annotations

import importlib
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from traject.agents.scripted import ScriptedPolicy
from traject.trainers.batching import TrainSequence
from traject.trainers.config import SFTConfig
from traject.trainers.schedule import make_scheduler
from traject.trainers.update import MicroBatcher, sft_step
from traject.types import Message, ToolCall, ToolSchema, Trajectory

__all__ = ["SFTDataError", "load_chat_jsonl", "load_script", "run_sft", "supervised_sequences"]


class SFTDataError(ValueError):
    """A demonstration file that cannot be used; the message names the file, line and field."""


def load_script(spec: str) -> Callable[..., Any]:
    """``module:function`` -> the function (a ScriptedPolicy script)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"sft.script {spec!r}: expected 'module:function', e.g. "
                         "traject.environments.builtin.lookup:solve")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"sft.script {spec!r}: cannot import {module_name!r}: {exc}") from exc
    fn = getattr(module, attr, None)
    if fn is None:
        raise ValueError(f"sft.script {spec!r}: {module_name!r} has no attribute {attr!r}")
    return fn  # type: ignore[no-any-return]


def scripted_policy(spec: str) -> ScriptedPolicy:
    return ScriptedPolicy(load_script(spec))


# --- OpenAI chat JSONL -------------------------------------------------------------------------


def _parse_arguments(raw: Any, where: str) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        try:
            value = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as exc:
            raise SFTDataError(f"{where}.function.arguments: not valid JSON ({exc.msg}). Fix: write the "
                               "arguments as a JSON object or a string holding one.") from None
        if isinstance(value, dict):
            return value
    raise SFTDataError(f"{where}.function.arguments: must be a JSON object (or a string holding one). "
                       "Fix: write e.g. {\"item\": \"fig\"}.")


def _message(obj: Any, where: str) -> Message:
    if not isinstance(obj, dict):
        raise SFTDataError(f"{where}: a message must be an object with 'role' and 'content'")
    role = obj.get("role")
    if role not in ("system", "user", "assistant", "tool"):
        raise SFTDataError(f"{where}.role: {role!r} is not one of system, user, assistant, tool")
    content = obj.get("content") or ""
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise SFTDataError(f"{where}.content: must be a string or a list of text parts")
    calls = []
    for j, tc in enumerate(obj.get("tool_calls") or []):
        w = f"{where}.tool_calls[{j}]"
        fn = tc.get("function") if isinstance(tc, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise SFTDataError(f"{w}: expected {{'type': 'function', 'function': {{'name': ..., 'arguments': ...}}}}")
        kwargs = {"id": tc["id"]} if isinstance(tc.get("id"), str) else {}
        calls.append(ToolCall(name=fn["name"], arguments=_parse_arguments(fn.get("arguments", {}), w), **kwargs))
    if role == "tool":
        return Message.tool(content, tool_call_id=str(obj.get("tool_call_id") or ""), name=str(obj.get("name") or ""))
    return Message(role=role, content=content, tool_calls=calls, reasoning=obj.get("reasoning_content"))


def _tool_schema(obj: Any, where: str) -> ToolSchema:
    fn = obj.get("function", obj) if isinstance(obj, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise SFTDataError(f"{where}: expected {{'type': 'function', 'function': {{'name': ..., 'parameters': ...}}}}")
    return ToolSchema(name=fn["name"], description=fn.get("description", ""),
                      parameters=fn.get("parameters") or {"type": "object", "properties": {}})


def load_chat_jsonl(path: str | Path) -> list[tuple[list[Message], list[ToolSchema]]]:
    """Conversations (and their tools) from a JSONL file in OpenAI chat format."""
    path = Path(path)
    if not path.exists():
        raise SFTDataError(f"{path}: no such file. Fix: set sft.path to a JSONL of chat conversations.")
    out = []
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SFTDataError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno}).") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list):
                raise SFTDataError(f"{where}: expected an object with a 'messages' list")
            messages = [_message(m, f"{where}: messages[{i}]") for i, m in enumerate(obj["messages"])]
            if not any(m.role == "assistant" for m in messages):
                raise SFTDataError(f"{where}: the conversation has no assistant message to learn from")
            tools = [_tool_schema(t, f"{where}: tools[{i}]") for i, t in enumerate(obj.get("tools") or [])]
            out.append((messages, tools))
    if not out:
        raise SFTDataError(f"{path}: no conversations in the file")
    return out


# --- sequences and training --------------------------------------------------------------------


def supervised_sequences(renderer: Any, conversations: Sequence[tuple[list[Message], list[ToolSchema]]], *,
                         max_len: int | None = None) -> list[TrainSequence]:
    """Render each conversation into TrainSequences with mask 1 on assistant turns."""
    out: list[TrainSequence] = []
    for i, (messages, tools) in enumerate(conversations):
        for view in renderer.render_supervised(messages, tools):
            ids, mask = view.ids, view.mask
            if max_len is not None and len(ids) > max_len:
                ids, mask = ids[:max_len], mask[:max_len]
            if any(mask[1:]):
                out.append(TrainSequence(list(ids), list(mask), [0.0] * len(ids), [0.0] * len(ids), source=i))
    return out


def conversations_from_trajectories(trajs: Sequence[Trajectory], tools: list[ToolSchema], *,
                                    only_successful: bool = False) -> list[tuple[list[Message], list[ToolSchema]]]:
    return [(t.messages, tools) for t in trajs
            if t.status.value != "infra_error" and (not only_successful or t.success)]


def run_sft(model: torch.nn.Module, sequences: Sequence[TrainSequence], cfg: SFTConfig, *, pad_id: int,
            device: torch.device | str = "cpu", micro_batch_tokens: int = 16384, seed: int = 0,
            grad_clip: float | None = 1.0, on_step: Callable[[int, dict[str, float]], None] | None = None,
            ) -> dict[str, float]:
    """Train ``model`` on ``sequences`` for ``cfg.epochs`` epochs (or ``cfg.steps`` optimizer
    steps) of ``cfg.batch_size`` sequences per optimizer step (AdamW; warmup, then ``cfg.schedule``).
    Returns the last metrics."""
    if not sequences:
        raise ValueError("SFT has no demonstrations to train on")
    n = len(sequences)
    steps = cfg.steps or max(1, math.ceil(cfg.epochs * n / cfg.batch_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    scheduler = make_scheduler(optimizer, total_steps=steps, warmup_steps=cfg.warmup_steps, schedule=cfg.schedule,
                               min_lr_ratio=cfg.min_lr_ratio)
    batcher = MicroBatcher(pad_id, torch.device(device), micro_batch_tokens, None, "off")
    gen = torch.Generator().manual_seed(seed)
    order: list[int] = []
    metrics: dict[str, float] = {}
    t0 = time.perf_counter()
    tokens = 0
    for step in range(steps):
        while len(order) < cfg.batch_size:
            order += torch.randperm(n, generator=gen).tolist()
        idx, order = order[:cfg.batch_size], order[cfg.batch_size:]
        stats = sft_step(model, optimizer, batcher([sequences[i] for i in idx]), grad_clip=grad_clip)
        scheduler.step()
        tokens += stats.tokens
        metrics = {f"sft/{k}": v for k, v in stats.metrics().items()}
        metrics["sft/lr"] = scheduler.get_last_lr()[0]
        metrics["sft/epoch"] = (step + 1) * cfg.batch_size / n
        metrics["sft/elapsed_s"] = time.perf_counter() - t0
        metrics["sft/tokens_per_s_overall"] = tokens / max(metrics["sft/elapsed_s"], 1e-9)
        if on_step is not None:
            on_step(step, metrics)
    return metrics
