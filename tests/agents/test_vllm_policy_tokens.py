"""VLLMPolicy's token-exact prompts, checked on CPU with a tiny local tokenizer (the engine
itself needs a GPU: benchmarks/verl_gpu_check.sh runs it there)."""

from __future__ import annotations

import pytest

from traject.agents.vllm_policy import IncrementalChatTokens


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    from transformers import AutoTokenizer

    from traject.agents.hf import build_tiny_model

    return AutoTokenizer.from_pretrained(build_tiny_model(tmp_path_factory.mktemp("tq")))


TOOLS = [{"type": "function", "function": {"name": "lookup", "description": "price",
                                            "parameters": {"type": "object", "properties": {}}}}]


def test_incremental_prompts_equal_the_full_rendering(tok):
    chat = IncrementalChatTokens(tok)
    history = [{"role": "system", "content": "Be exact."}, {"role": "user", "content": "What do 2 fig cost?"}]
    prompt = chat.first_prompt(history, TOOLS)
    assert prompt == tok.encode(chat.render(history, TOOLS, gen=True), add_special_tokens=False)
    for k, item in enumerate(["fig", "kiwi"]):
        assistant = {"role": "assistant", "content": f"Step {k}.",
                     "tool_calls": [{"type": "function", "function": {"name": "lookup", "arguments": {"item": item}}}]}
        # what the model "samples": exactly the template's rendering of its turn, up to <|im_end|>
        full = chat.render(history + [assistant], TOOLS, gen=False)
        before = chat.render(history, TOOLS, gen=True)
        sampled = tok.encode(full[len(before):].rstrip("\n"), add_special_tokens=False)
        assert tok.decode(sampled[-1:]) == "<|im_end|>"
        new = [{"role": "tool", "content": str(7 + k), "name": "lookup"}]
        prompt = prompt + sampled + chat.observation_tokens(new, TOOLS, last_assistant=assistant, ended_with_eos=True)
        history = history + [assistant] + new
        assert prompt == tok.encode(chat.render(history, TOOLS, gen=True), add_special_tokens=False)


def test_turn_cut_short_is_closed_as_context(tok):
    chat = IncrementalChatTokens(tok)
    obs = chat.observation_tokens([{"role": "user", "content": "go on"}], None,
                                  last_assistant={"role": "assistant", "content": "x"}, ended_with_eos=False)
    assert tok.decode(obs).startswith("<|im_end|>\n<|im_start|>user\ngo on")


def test_policy_without_vllm_names_the_extra():
    try:
        import vllm  # noqa: F401
    except ImportError:
        from traject.agents.vllm_policy import VLLMPolicy

        with pytest.raises(ImportError, match=r"traject\[vllm\]"):
            VLLMPolicy("any")
    else:
        pytest.skip("vLLM is installed here")
