import json

import pytest
import torch

from traject.trainers.config import SFTConfig
from traject.trainers.sft import SFTDataError, load_chat_jsonl, load_script, run_sft, supervised_sequences

TOOLS = [{"type": "function", "function": {"name": "lookup", "description": "Look up a price.",
                                           "parameters": {"type": "object", "properties": {"item": {"type": "string"}}}}}]


def convo(price: int, item: str = "fig") -> dict:
    return {"messages": [
        {"role": "system", "content": "Use the tools."},
        {"role": "user", "content": f"How much is one {item}?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": json.dumps({"item": item})}}]},
        {"role": "tool", "tool_call_id": "c1", "content": str(price)},
        {"role": "assistant", "content": f"It costs {price}."},
    ], "tools": TOOLS}


def write(tmp_path, lines):
    p = tmp_path / "demos.jsonl"
    p.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return p


def test_loads_openai_chat_jsonl(tmp_path):
    (messages, tools), = load_chat_jsonl(write(tmp_path, [convo(7)]))
    assert [m.role for m in messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert messages[2].tool_calls[0].arguments == {"item": "fig"} and messages[2].tool_calls[0].id == "c1"
    assert tools[0].name == "lookup"


@pytest.mark.parametrize("bad, match", [
    ("{not json", r"demos.jsonl:1: not valid JSON"),
    ({"msgs": []}, r"demos.jsonl:1: expected an object with a 'messages' list"),
    ({"messages": [{"role": "robot", "content": "x"}]}, r"messages\[0\].role: 'robot'"),
    ({"messages": [{"role": "user", "content": "x"}]}, "no assistant message"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}]},
     r"messages\[0\].tool_calls\[0\].function.arguments: not valid JSON"),
])
def test_bad_demonstrations_name_the_line_and_field(tmp_path, bad, match):
    with pytest.raises(SFTDataError, match=match):
        load_chat_jsonl(write(tmp_path, [bad]))


def test_load_script_errors():
    assert callable(load_script("traject.environments.builtin.lookup:solve"))
    with pytest.raises(ValueError, match="module:function"):
        load_script("nocolon")
    with pytest.raises(ValueError, match="has no attribute"):
        load_script("traject.environments.builtin.lookup:nope")


def test_sft_trains_only_assistant_tokens_and_lowers_the_loss(tmp_path, tiny_model_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from traject.agents.chat_renderer import ChatRenderer

    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    convs = load_chat_jsonl(write(tmp_path, [convo(p, item) for p, item in [(7, "fig"), (3, "kiwi"), (9, "plum")]]))
    seqs = supervised_sequences(ChatRenderer(tok), convs)
    assert len(seqs) == 3
    for s in seqs:
        trained = tok.decode([i for i, m in zip(s.ids, s.mask) if m])
        # only the assistant's turns (the tool call, the answer, their end-of-turn tokens) are trained on
        assert "It costs" in trained and '"lookup"' in trained
        assert "How much" not in trained and "Use the tools" not in trained and "<tool_response>" not in trained
    losses = []
    run_sft(model, seqs, SFTConfig(epochs=30, batch_size=3, lr=3e-3), pad_id=tok.pad_token_id,
            on_step=lambda i, m: losses.append(m["sft/loss"]))
    assert losses[-1] < 0.5 * losses[0], losses
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_sft_schedule_warms_up_then_decays_to_the_floor(tmp_path, tiny_model_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from traject.agents.chat_renderer import ChatRenderer

    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    seqs = supervised_sequences(ChatRenderer(tok), load_chat_jsonl(write(tmp_path, [convo(7, "fig")])))
    lrs = []
    cfg = SFTConfig(steps=10, batch_size=1, lr=1e-3, warmup_steps=2, schedule="cosine", min_lr_ratio=0.1)
    run_sft(model, seqs, cfg, pad_id=tok.pad_token_id, on_step=lambda i, m: lrs.append(m["sft/lr"]))
    assert len(lrs) == 10 and max(lrs) == pytest.approx(1e-3)
    assert lrs == sorted(lrs[:2]) + sorted(lrs[2:], reverse=True)  # up during warmup, then down
    assert lrs[-1] == pytest.approx(1e-4)
    constant = []
    run_sft(model, seqs, SFTConfig(steps=4, batch_size=1, lr=1e-3), pad_id=tok.pad_token_id,
            on_step=lambda i, m: constant.append(m["sft/lr"]))
    assert constant == pytest.approx([1e-3] * 4)
