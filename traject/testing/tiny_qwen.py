"""A tiny Qwen2-shaped model directory, built locally in a second: a byte-level BPE tokenizer
trained on a few lines, Qwen2.5's ChatML chat template with hermes tool calls, and a
``config.json``. Frameworks that load models by path (veRL, vLLM, transformers) accept it;
nothing is downloaded.

>>> import tempfile
>>> from transformers import AutoTokenizer
>>> d = build_tiny_qwen(tempfile.mkdtemp())
>>> tok = AutoTokenizer.from_pretrained(d)
>>> text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
...                                add_generation_prompt=True)
>>> text.endswith("<|im_start|>assistant\\n")
True
"""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Plain added tokens, as in Qwen2.5: they decode even with skip_special_tokens=True.
TOOL_TOKENS = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]

# Qwen2.5-Instruct's template, shortened (no default system prompt, no whitespace control), same structure: tools in
# the system turn, assistant tool calls as <tool_call> JSON, tool results grouped in a user turn.
CHAT_TEMPLATE = (
    "{% if tools %}"
    "<|im_start|>system\n"
    "{% if messages[0].role == 'system' %}{{ messages[0].content + '\\n\\n' }}{% endif %}"
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
    "{% for tool in tools %}{{ '\\n' }}{{ tool | tojson }}{% endfor %}"
    "{{ '\\n' }}</tools>\n\n"
    "For each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
    "<args-json-object>}\n</tool_call><|im_end|>\n"
    "{% elif messages[0].role == 'system' %}"
    "<|im_start|>system\n{{ messages[0].content }}<|im_end|>\n"
    "{% endif %}"
    "{% for message in messages %}"
    "{% if message.role == 'user' or (message.role == 'system' and not loop.first) "
    "or (message.role == 'assistant' and not message.tool_calls) %}"
    "<|im_start|>{{ message.role + '\\n' + message.content }}<|im_end|>\n"
    "{% elif message.role == 'assistant' %}"
    "<|im_start|>assistant"
    "{% if message.content %}{{ '\\n' + message.content }}{% endif %}"
    "{% for tool_call in message.tool_calls %}"
    "{% if tool_call.function is defined %}{% set tool_call = tool_call.function %}{% endif %}"
    "{{ '\\n' }}<tool_call>{{ '\\n' }}{\"name\": \"{{ tool_call.name }}\", \"arguments\": "
    "{% if tool_call.arguments is string %}{{ tool_call.arguments }}"
    "{% else %}{{ tool_call.arguments | tojson }}{% endif %}}{{ '\\n' }}</tool_call>"
    "{% endfor %}<|im_end|>\n"
    "{% elif message.role == 'tool' %}"
    "{% if loop.first or messages[loop.index0 - 1].role != 'tool' %}<|im_start|>user{% endif %}"
    "{{ '\\n' }}<tool_response>{{ '\\n' + message.content + '\\n' }}</tool_response>"
    "{% if loop.last or messages[loop.index0 + 1].role != 'tool' %}<|im_end|>{{ '\\n' }}{% endif %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant{{ '\\n' }}{% endif %}"
)

_CORPUS = [
    "system user assistant tool You are a helpful assistant.",
    'How much do 2 apple and 1 fig cost in total? <tool_call>\n{"name": "lookup", "arguments": {"item": "apple"}}\n</tool_call>',
    '{"name": "submit", "arguments": {"answer": 42}} The answer is 42. Submitted.',
    "SELECT name, price FROM items WHERE id = 1; No item named pear. Error: tool failed",
    "0123456789 the of and to a in is you that it he was for on are as with his they",
]


def build_tiny_qwen(out_dir: str | Path, *, vocab_size: int = 600, with_weights: bool = False,
                    hidden_size: int = 32, num_layers: int = 2) -> Path:
    """Write the tokenizer and config (and, with ``with_weights``, random weights) to
    ``out_dir``; return it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS * 8, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|endoftext|>", eos_token="<|im_end|>")
    fast.add_tokens(TOOL_TOKENS)
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    config = Qwen2Config(
        vocab_size=len(fast), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=4096, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
        bos_token_id=None, tie_word_embeddings=True, architectures=["Qwen2ForCausalLM"],
        torch_dtype="float32",
    )
    config.save_pretrained(out)
    if with_weights:
        import torch
        from transformers import Qwen2ForCausalLM

        torch.manual_seed(0)
        Qwen2ForCausalLM(config).save_pretrained(out)
    return out
