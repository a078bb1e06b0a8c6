"""A tiny chat model and tokenizer, built locally: no download, deterministic given a seed.

For the quickstart (SFT, then GRPO on the ``lookup`` env, on a CPU, in minutes) and for tests.
``build_tiny_model(path)`` trains a byte-level BPE tokenizer in-process on a small corpus (the
chat template's markup, tool-call tags, and conversations of the built-in ``lookup`` env),
wraps it as a ``transformers`` fast tokenizer with a ChatML/Hermes chat template, makes a
randomly initialised Qwen2 causal LM with ``AutoModelForCausalLM.from_config``, and saves both
with ``save_pretrained``: everything downstream loads them with ``from_pretrained(path)``, the
same code path as for a real model.

>>> path = build_tiny_model(tmp_path / "tiny")                # doctest: +SKIP
>>> policy = HFPolicy.from_pretrained(path)                    # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traject.agents.hf.templates import get_template

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

PAD, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = (PAD, IM_START, IM_END)
# Markup the templates and formats write; single tokens, but ordinary text (kept when decoding).
MARKUP_TOKENS = ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>")
# Qwen2's pre-tokenizer split: digits one by one (so numbers are learnable), words with one
# leading non-letter, punctuation runs, newlines, other whitespace.
_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")
SPEC_FILE = "traject_tiny.json"


@dataclass(frozen=True)
class TinySpec:
    """Everything that determines the built files; saved beside them so a rebuild is skipped
    when nothing changed."""

    seed: int = 0
    template: str = "hermes"
    vocab_size: int = 1024
    hidden_size: int = 128
    intermediate_size: int = 384
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    max_position_embeddings: int = 4096
    corpus_tasks: int = 200

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def corpus(n_tasks: int = 200, seed: int = 0) -> Iterator[str]:
    """Text the tokenizer is trained on: conversations of the ``lookup`` env rendered with the
    chat template (gold tool calls, tool results, errors), plus the template's markup."""
    from transformers.utils.chat_template_utils import render_jinja_template

    from traject.environments.builtin.lookup import ITEMS, SYSTEM_PROMPT, lookup, lookup_tasks, submit

    tools = [lookup.schema.to_openai(), submit.schema.to_openai()]
    rng = random.Random(seed)
    yield SYSTEM_PROMPT
    yield " ".join(ITEMS) + " " + " ".join(f"{i}" for i in range(200))
    for split in ("train", "test"):
        for task in lookup_tasks(split=split, n=n_tasks // 2, seed=seed, items_per_order=rng.randint(1, 3)):
            prices: dict[str, int] = task.data["prices"]  # type: ignore[assignment]
            order: list[list[Any]] = task.data["order"]  # type: ignore[assignment]
            msgs: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT},
                                          {"role": "user", "content": task.prompt}]
            for item, _qty in order:
                call = {"type": "function", "function": {"name": "lookup", "arguments": {"item": item}}}
                msgs.append({"role": "assistant", "content": "", "tool_calls": [call]})
                msgs.append({"role": "tool", "name": "lookup", "content": str(prices[item])})
            wrong = rng.choice(ITEMS)
            msgs += [
                {"role": "assistant", "content": f"Let me check the {wrong}.",
                 "tool_calls": [{"type": "function", "function": {"name": "lookup", "arguments": {"item": wrong}}}]},
                {"role": "tool", "name": "lookup",
                 "content": f"No item named {wrong!r}. Items: {', '.join(sorted(prices))}"},
                {"role": "assistant", "content": "",
                 "tool_calls": [{"type": "function", "function": {"name": "submit", "arguments": {"answer": task.answer}}}]},
                {"role": "tool", "name": "submit", "content": "Submitted."},
                {"role": "assistant", "content": f"The total is {task.answer}."},
            ]
            text = render_jinja_template([msgs], tools=tools, chat_template=get_template("hermes"))[0][0]
            yield text
    yield ("Error: your tool call could not be parsed: the <tool_call> block is not valid JSON. "
           "Error: there is no tool named 'x'. Available tools: lookup, submit. "
           "Please continue: use one of your tools, or call the tool that submits your answer.")


def _strip_markup(texts: Iterable[str]) -> Iterator[str]:
    for text in texts:
        for tok in SPECIAL_TOKENS + MARKUP_TOKENS:
            text = text.replace(tok, "\n")
        yield text


def build_tiny_tokenizer(spec: TinySpec | None = None) -> PreTrainedTokenizerBase:
    """A byte-level BPE tokenizer trained here, as a ``transformers`` fast tokenizer with the
    spec's chat template. ``<|im_end|>`` is the eos token, ``<|endoftext|>`` the pad token."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    spec = spec or TinySpec()
    tok = Tokenizer(models.BPE())
    # The same normaliser and pre-tokeniser as Qwen2's: transformers loads a saved Qwen2
    # tokenizer through its Qwen2 class, which sets these, so the built and loaded ones agree.
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    reserved = len(SPECIAL_TOKENS) + len(MARKUP_TOKENS)
    trainer = trainers.BpeTrainer(vocab_size=spec.vocab_size - reserved, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_strip_markup(corpus(spec.corpus_tasks, spec.seed)), trainer=trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in MARKUP_TOKENS])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=IM_END, pad_token=PAD,
                                   chat_template=get_template(spec.template), clean_up_tokenization_spaces=False,
                                   model_max_length=spec.max_position_embeddings)


def build_tiny_causal_lm(tokenizer: PreTrainedTokenizerBase, spec: TinySpec | None = None) -> PreTrainedModel:
    """A randomly initialised Qwen2 causal LM sized for ``tokenizer``; the seed fixes the weights
    without touching the caller's global RNG."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, Qwen2Config

    spec = spec or TinySpec()
    eos, pad = tokenizer.convert_tokens_to_ids([IM_END, PAD])
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size, num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads, num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=spec.max_position_embeddings, tie_word_embeddings=True,
        bos_token_id=None, eos_token_id=eos, pad_token_id=pad,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=pad, bos_token_id=None)
    return model


def build_tiny_model(path: str | Path, spec: TinySpec | None = None, *, force: bool = False, **overrides: Any) -> Path:
    """Build the tiny tokenizer and model into ``path`` (a directory) and return it.

    ``overrides`` are TinySpec fields (``seed=1``, ``template="qwen3"``, ``hidden_size=64``...).
    When ``path`` already holds a build of the same spec it is reused, unless ``force``.
    """
    spec = spec or TinySpec()
    if overrides:
        spec = TinySpec(**{**asdict(spec), **overrides})
    path = Path(path)
    marker = path / SPEC_FILE
    if not force and marker.exists():
        try:
            if json.loads(marker.read_text()).get("digest") == spec.digest():
                return path
        except (OSError, json.JSONDecodeError):
            pass
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(spec)
    model = build_tiny_causal_lm(tokenizer, spec)
    tokenizer.save_pretrained(path)
    model.save_pretrained(path)
    marker.write_text(json.dumps({"spec": asdict(spec), "digest": spec.digest()}, indent=2))
    return path
