"""One token builder: every path that turns messages into prompt ids (HFPolicy, VLLMPolicy,
the veRL agent loop's policy, CompletionsPolicy in both request forms) gives the same ids,
masks, logprobs and segment splits for the same conversation and the same sampled ids.

The sampled ids are replayed (the same ids into every path, as each path's sampler would hand
them over), written on purpose the way a model may write them and a tokenizer would not:
one token per character, tool-call JSON with its keys in another order than the template
renders them, reasoning that a Qwen3-style template drops from history, a turn cut short."""

from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace

import anyio
import pytest

from traject.agents.completions_policy import CompletionsPolicy
from traject.agents.tokens import build_token_views
from traject.agents.vllm_policy import VLLMPolicy
from traject.environments.builtin.lookup import lookup, submit
from traject.types import Message, TokenView

TOOLS = [lookup.schema, submit.schema]
EOT = "<|im_end|>"


def _odd_ids(tok, text: str) -> list[int]:
    """``text`` one token per character: ids a tokenizer would never produce for it."""
    return [i for ch in text for i in tok.encode(ch, add_special_tokens=False)]


def script(tok, thinking: bool) -> list[tuple[list[int], str, list[Message]]]:
    """Per turn: the sampled ids, the finish reason, and the observations that follow."""
    think = (lambda r: f"{r}\n</think>\n\n") if thinking else (lambda r: "")
    eot = tok.convert_tokens_to_ids(EOT)
    call = '<tool_call>\n{"arguments": {"item": "fig"},   "name": "lookup"}\n</tool_call>'
    return [
        (_odd_ids(tok, think("find the price") + call) + [eot], "stop",
         [Message.tool("4", tool_call_id="PLACEHOLDER", name="lookup")]),
        (tok.encode(think("so 8") + "The total is 8.", add_special_tokens=False) + [eot], "stop",
         [Message.user("And 3 fig?")]),
        (_odd_ids(tok, think("3 times 4") + "It is 1"), "length", []),
    ]


def _logprobs(turn: int, n: int) -> list[float]:
    return [-(turn + 1) / 10 - i / 1000 for i in range(n)]


def _link(messages: list[Message], reply: Message, observations: list[Message]) -> list[Message]:
    obs = [o.model_copy(update={"tool_call_id": reply.tool_calls[0].id}) if o.role == "tool" else o
           for o in observations]
    return [*messages, reply, *obs]


def _tokenizer(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def run_hf(path, tok, turns):
    import torch
    from transformers import AutoModelForCausalLM

    from traject.agents.hf import HFPolicy

    with torch.random.fork_rng(devices=[]):
        policy = HFPolicy(AutoModelForCausalLM.from_pretrained(path), tok)

    def step(messages, ids, lps, finish):
        prompt = policy.turns.prompt(messages, TOOLS)
        return prompt.ids, policy.turns.message(prompt, ids, logprobs=lps, finish_reason=finish)
    return step


def run_vllm(path, tok, turns):
    policy = VLLMPolicy.without_engine(tok, max_model_len=4096)

    def step(messages, ids, lps, finish):
        prompt, _room = policy.prompt(messages, TOOLS)
        # vLLM's CompletionOutput: token_ids, and per token a {token_id: Logprob} dict
        out = SimpleNamespace(token_ids=ids, logprobs=[{t: SimpleNamespace(logprob=lp)} for t, lp in zip(ids, lps)],
                              finish_reason=finish)
        return prompt.ids, policy.finish(prompt, out)
    return step


def run_http(dialect):
    def make(path, tok, turns):
        policy = CompletionsPolicy(model="m", base_url="http://127.0.0.1:9/v1", tokenizer=tok, dialect=dialect)

        def step(messages, ids, lps, finish):
            prompt, _ = policy.prompt(messages, TOOLS)
            text = tok.decode(ids[:-1] if ids[-1] == policy.turns.renderer.end_of_turn_id else ids)
            if dialect == "vllm":
                answer = {"choices": [{"text": text, "token_ids": ids, "prompt_token_ids": prompt.ids,
                                       "finish_reason": finish, "logprobs": {"token_logprobs": lps}}]}
            else:
                answer = {"text": text, "output_ids": ids,
                          "meta_info": {"finish_reason": {"type": finish},
                                        "output_token_logprobs": [[lp, t, None] for t, lp in zip(ids, lps)]}}
            message = policy.finish(prompt, answer)
            assert message.generation.text_mismatch is None
            return prompt.ids, message
        return step
    return make


def run_verl(path, tok, turns):
    pytest.importorskip("verl", reason="the veRL extra is not installed")
    from verl.workers.rollout.replica import TokenOutput

    from traject.trainers.verl.policy import VerlServerPolicy

    class ReplayServer:
        def __init__(self):
            self.queue = []

        async def generate(self, *, request_id, prompt_ids, sampling_params, image_data=None, **kw):
            ids, lps, finish = self.queue.pop(0)
            return TokenOutput(token_ids=ids, log_probs=lps, stop_reason="completed" if finish == "stop" else None)

    server = ReplayServer()
    policy = VerlServerPolicy(server_manager=server, tokenizer=tok, request_id="r", sampling_params={},
                              prompt_length=4096, response_length=4096)

    def step(messages, ids, lps, finish):
        server.queue.append((ids, lps, finish))
        out = anyio.run(policy.act, messages, TOOLS)
        return out.message.generation.prompt_ids, out.message
    return step


PATHS = {"hf": run_hf, "vllm": run_vllm, "http-vllm": run_http("vllm"), "http-sglang": run_http("sglang"),
         "verl": run_verl}


def conversation(make, path: Path, thinking: bool):
    tok = _tokenizer(path)
    turns = script(tok, thinking)
    step = make(path, tok, turns)
    messages = [Message.system("Be exact."), Message.user("How much do 2 fig cost?")]
    prompts = []
    for k, (ids, finish, obs) in enumerate(turns):
        prompt_ids, reply = step(messages, ids, _logprobs(k, len(ids)), finish)
        assert reply.generation.completion_ids == ids  # kept as sampled
        prompts.append(prompt_ids)
        messages = _link(messages, reply, obs)
    return tok, turns, prompts, messages


def check_invariants(views: list[TokenView], turns) -> None:
    """mask 1 exactly on the sampled ids, with their logprobs; 0.0 elsewhere; turns in order."""
    sampled = [t[0] for t in turns]
    seen = []
    for v in views:
        assert len(v.ids) == len(v.mask) == len(v.logprobs) == len(v.turn)
        for m, lp, t in zip(v.mask, v.logprobs, v.turn):
            assert (m == 1) == (t >= 0)
            if m == 0:
                assert lp == 0.0
        for k, grp in itertools.groupby(range(len(v.ids)), key=lambda i: v.turn[i]):
            if k >= 0:
                idx = list(grp)
                assert [v.ids[i] for i in idx] == sampled[k]
                assert [v.logprobs[i] for i in idx] == pytest.approx(_logprobs(k, len(sampled[k])))
                seen.append(k)
    assert seen == list(range(len(sampled)))


@pytest.mark.parametrize("template", ["hermes", "qwen3"])
def test_every_path_builds_the_same_tokens(template, tiny_path, tiny_qwen3_path) -> None:
    path = tiny_qwen3_path if template == "qwen3" else tiny_path
    results = {name: conversation(make, path, thinking=template == "qwen3") for name, make in PATHS.items()}
    tok, turns, ref_prompts, ref_messages = results["hf"]
    ref_views = build_token_views(ref_messages)
    check_invariants(ref_views, turns)
    # Qwen3's template drops the earlier reasoning once "And 3 fig?" arrives: a second segment.
    assert len(ref_views) == (2 if template == "qwen3" else 1)
    # The tool call was written with its keys in another order than the template renders them,
    # and one token per character: the next prompt still holds it exactly as sampled.
    g0 = ref_messages[2].generation
    assert ref_prompts[1][: len(g0.prompt_ids) + len(g0.completion_ids)] == g0.prompt_ids + g0.completion_ids
    assert ref_messages[2].tool_calls[0].name == "lookup" and ref_messages[2].tool_calls[0].arguments == {"item": "fig"}
    for name, (_, _, prompts, messages) in results.items():
        assert prompts == ref_prompts, name
        views = build_token_views(messages)
        assert [(v.ids, v.mask, v.turn, v.prompt_len) for v in views] == \
            [(v.ids, v.mask, v.turn, v.prompt_len) for v in ref_views], name
        assert [v.logprobs for v in views] == [v.logprobs for v in ref_views], name
        assert [(m.text, m.reasoning, [c.arguments for c in m.tool_calls]) for m in messages] == \
            [(m.text, m.reasoning, [c.arguments for c in m.tool_calls]) for m in ref_messages], name
