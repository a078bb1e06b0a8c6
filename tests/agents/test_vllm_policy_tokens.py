"""VLLMPolicy's token path, checked on CPU with a tiny local tokenizer (the engine itself needs
a GPU: benchmarks/verl_gpu_check.sh runs it there). Its ids agree with every other path:
tests/agents/test_one_token_builder.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from traject.agents.policy import ContextExhausted
from traject.agents.vllm_policy import VLLMPolicy
from traject.types import Message


@pytest.fixture(scope="module")
def tok(tiny_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_path)


def test_prompt_budget_and_output(tok):
    policy = VLLMPolicy.without_engine(tok, max_model_len=64, max_tokens=32)
    prompt, room = policy.prompt([Message.user("What do 2 fig cost?")], [])
    assert prompt.ids == tok.encode(prompt.text, add_special_tokens=False)
    assert room == min(32, 64 - len(prompt.ids))
    ids = tok.encode('<tool_call>\n{"name": "lookup", "arguments": {"item": "fig"}}\n</tool_call>',
                     add_special_tokens=False) + [tok.convert_tokens_to_ids("<|im_end|>")]
    out = SimpleNamespace(token_ids=ids, logprobs=[{t: SimpleNamespace(logprob=-0.5)} for t in ids],
                          finish_reason="stop")
    m = policy.finish(prompt, out)
    assert m.tool_calls[0].arguments == {"item": "fig"} and m.text == ""
    assert m.generation.completion_ids == ids and m.generation.logprobs == [-0.5] * len(ids)
    with pytest.raises(ContextExhausted, match="max_model_len is 64"):
        policy.prompt([Message.user("fig " * 80)], [])


def test_policy_without_vllm_names_the_extra():
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"traject\[vllm\]"):
            VLLMPolicy("any")
    else:
        pytest.skip("vLLM is installed here")
