"""A copy of the tiny model briefly fine-tuned on gold ``lookup`` episodes, so that it writes
tool calls (mostly malformed ones, some right) and episodes run for several turns."""

from __future__ import annotations

import random
import re
from pathlib import Path

import anyio
import pytest

torch = pytest.importorskip("torch")

SFT_STEPS, SFT_BATCH, SFT_LR, SFT_CONTEXT = 80, 8, 3e-3, 48


def gold_lookup_action(messages, tools):
    """The right next action in a ``lookup`` episode: look up each item, then submit the total."""
    from traject.types import Message, ToolCall

    question = next(m.text for m in messages if m.role == "user")
    order = [(int(q), item) for q, item in re.findall(r"(\d+) (\w+)", question)]
    asked: dict[str, str] = {}
    prices: dict[str, int] = {}
    for m in messages:
        for c in m.tool_calls:
            if c.name == "lookup":
                asked[c.id] = str(c.arguments["item"])
        if m.role == "tool" and m.tool_call_id in asked:
            prices[asked[m.tool_call_id]] = int(m.text)
    for _, item in order:
        if item not in prices:
            return Message.assistant("", tool_calls=[ToolCall(name="lookup", arguments={"item": item})])
    return Message.assistant("", tool_calls=[ToolCall(name="submit",
                                                      arguments={"answer": sum(q * prices[i] for q, i in order)})])


def gold_trajectories(n: int, seed: int = 0):
    from traject.agents import Rollouts, ScriptedPolicy
    from traject.environments.builtin.lookup import lookup_tasks

    tasks = (lookup_tasks("train", n=n // 2, seed=seed, items_per_order=1)
             + lookup_tasks("train", n=n - n // 2, seed=seed + 1, items_per_order=2))
    return anyio.run(Rollouts(ScriptedPolicy(gold_lookup_action), "lookup", concurrency=8).run, tasks)


def _turn_windows(views, context: int) -> list[tuple[list[int], list[int]]]:
    """(ids, mask) windows: each assistant turn with the ``context`` tokens before it. Far
    cheaper to train on than whole conversations, and enough to learn the call format."""
    out = []
    for v in views:
        i = 0
        while i < len(v.ids):
            if v.mask[i]:
                j = i
                while j < len(v.ids) and v.mask[j]:
                    j += 1
                lo = max(0, i - context)
                out.append((v.ids[lo:j], [0] * (i - lo) + [1] * (j - i)))
                i = j
            else:
                i += 1
    return out


@pytest.fixture(scope="session")
def sft_path(tiny_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model after a few dozen supervised steps on gold episodes, saved like any model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from traject.agents.chat_renderer import ChatRenderer
    from traject.environments.builtin.lookup import lookup, submit

    tokenizer = AutoTokenizer.from_pretrained(tiny_path)
    renderer = ChatRenderer(tokenizer)
    tools = [lookup.schema, submit.schema]
    views = [v for t in gold_trajectories(32) for v in renderer.render_supervised(t.messages, tools)]
    windows = _turn_windows(views, SFT_CONTEXT)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(tiny_path)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=SFT_LR)
        rng = random.Random(0)
        for _ in range(SFT_STEPS):
            batch = rng.sample(windows, SFT_BATCH)
            width = max(len(ids) for ids, _ in batch)
            ids = torch.full((len(batch), width), tokenizer.pad_token_id)
            labels = torch.full((len(batch), width), -100)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            for i, (seq, mask) in enumerate(batch):
                ids[i, : len(seq)] = torch.tensor(seq)
                attention[i, : len(seq)] = 1
                labels[i, : len(seq)] = torch.tensor([t if m else -100 for t, m in zip(seq, mask)])
            logits = model(input_ids=ids, attention_mask=attention).logits
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                     labels[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
    path = tmp_path_factory.mktemp("sft") / "model"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
