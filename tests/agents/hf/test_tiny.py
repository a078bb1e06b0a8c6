"""The locally built tiny model: deterministic, small, and loaded by the ordinary HF code."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from traject.agents.hf import TinySpec, build_tiny_causal_lm, build_tiny_model, build_tiny_tokenizer  # noqa: E402
from traject.agents.hf.tiny import MARKUP_TOKENS, SPECIAL_TOKENS, corpus  # noqa: E402


def _weights_digest(model) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def test_build_is_deterministic(tiny_path: Path, tmp_path: Path) -> None:
    again = build_tiny_model(tmp_path / "again")
    assert (again / "tokenizer.json").read_bytes() == (tiny_path / "tokenizer.json").read_bytes()
    assert _weights_digest(AutoModelForCausalLM.from_pretrained(again)) == \
        _weights_digest(AutoModelForCausalLM.from_pretrained(tiny_path))
    tokenizer = AutoTokenizer.from_pretrained(tiny_path)
    other_seed = build_tiny_causal_lm(tokenizer, TinySpec(seed=1))
    assert _weights_digest(other_seed) != _weights_digest(AutoModelForCausalLM.from_pretrained(tiny_path))


def test_existing_build_is_reused_unless_the_spec_changes(tiny_path: Path) -> None:
    stamp = (tiny_path / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_model(tiny_path) == tiny_path
    assert (tiny_path / "model.safetensors").stat().st_mtime_ns == stamp


def test_tokenizer_is_small_and_has_the_chat_tokens(tiny_path: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_path)
    assert 300 <= len(tok) <= 2048
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    for t in SPECIAL_TOKENS + MARKUP_TOKENS:
        assert len(tok.encode(t, add_special_tokens=False)) == 1, t
    # Markup is ordinary text: kept when decoding with skip_special_tokens, unlike the chat tokens.
    ids = tok.encode("<|im_start|>a<tool_call>b<|im_end|>", add_special_tokens=False)
    assert tok.decode(ids, skip_special_tokens=True) == "a<tool_call>b"
    # Digits are single tokens, so prices and totals are learnable.
    assert len(tok.encode("12345", add_special_tokens=False)) == 5


def test_saved_tokenizer_encodes_like_the_built_one(tiny_path: Path) -> None:
    built = build_tiny_tokenizer()
    loaded = AutoTokenizer.from_pretrained(tiny_path)
    rng = random.Random(0)
    alphabet = "abc XYZ\n\t{}\":,<>|_0123456789éü漢🙂" + "".join(SPECIAL_TOKENS + MARKUP_TOKENS)
    samples = list(corpus(n_tasks=6)) + ["".join(rng.choice(alphabet) for _ in range(80)) for _ in range(200)]
    for text in samples:
        ids = built.encode(text, add_special_tokens=False)
        assert loaded.encode(text, add_special_tokens=False) == ids
        assert loaded.decode(ids) == text


def test_model_loads_with_from_pretrained_and_runs(tiny_path: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_path)
    tok = AutoTokenizer.from_pretrained(tiny_path)
    assert model.config.model_type == "qwen2" and model.config.num_hidden_layers == 2
    assert model.config.vocab_size == len(tok)
    assert sum(p.numel() for p in model.parameters()) < 2_000_000
    out = model(input_ids=torch.tensor([tok.encode("How much do 2 fig cost?")]))
    assert out.logits.shape[-1] == len(tok)


def _render(tok, messages, **kw) -> str:
    return tok.apply_chat_template(messages, tokenize=False, **kw)


def test_hermes_template(tiny_path: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_path)
    tools = [{"type": "function", "function": {"name": "lookup", "description": "Price.", "parameters": {}}}]
    call = {"type": "function", "function": {"name": "lookup", "arguments": {"item": "fig"}}}
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Cost?"},
            {"role": "assistant", "content": "", "tool_calls": [call, call]},
            {"role": "tool", "name": "lookup", "content": "3"}, {"role": "tool", "name": "lookup", "content": "3"}]
    text = _render(tok, msgs, tools=tools, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nBe brief.\n\n# Tools\n")
    assert '<tools>\n{"type": "function", "function": {"name": "lookup"' in text
    assert ('<|im_start|>assistant\n<tool_call>\n{"name": "lookup", "arguments": {"item": "fig"}}\n</tool_call>\n'
            '<tool_call>\n{"name": "lookup", "arguments": {"item": "fig"}}\n</tool_call><|im_end|>\n') in text
    assert text.endswith("<|im_start|>user\n<tool_response>\n3\n</tool_response>\n<tool_response>\n3\n"
                         "</tool_response><|im_end|>\n<|im_start|>assistant\n")
    assert not _render(tok, msgs[:2]).endswith("<|im_start|>assistant\n")
    assert _render(tok, msgs[1:2]) == "<|im_start|>user\nCost?<|im_end|>\n"
    kept = _render(tok, [msgs[1], {"role": "assistant", "content": "5", "reasoning_content": "3+2"}])
    assert kept.endswith("<|im_start|>assistant\n<think>\n3+2\n</think>\n\n5<|im_end|>\n")


def test_qwen3_template_drops_reasoning_before_the_last_user_turn(tiny_qwen3_path: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_qwen3_path)
    first = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "x", "reasoning_content": "R1"}]
    assert _render(tok, first).endswith("<think>\nR1\n</think>\n\nx<|im_end|>\n")
    assert _render(tok, first[:1], add_generation_prompt=True).endswith("<|im_start|>assistant\n<think>\n")
    later = _render(tok, [*first, {"role": "user", "content": "b"}], add_generation_prompt=True)
    assert "R1" not in later and "<|im_start|>assistant\nx<|im_end|>" in later
