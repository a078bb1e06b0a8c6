"""A simulated user inside TrajectAgentLoop (veRL 0.9.1 has no interactions of its own): the
empathy env's emotion-tracking user, an LLM served by a real local HTTP server with scripted
answers, runs inside the episode; the user's turns are masked out, the final emotion is the
reward that reaches rm_scores."""

from __future__ import annotations

import json
import re

import pytest

verl = pytest.importorskip("verl", reason="the veRL extra is not installed (pip install 'traject[verl]')")

from traject.trainers.verl.testing import ScriptedServerClient  # noqa: E402

pytestmark = pytest.mark.anyio
AGENT_SAYS = "<think>They feel unseen.</think>That sounds hard. Tell me more?"


def user_llm(req):
    if req.messages[0]["content"].startswith("You analyse"):  # the emotion analyser call
        return json.dumps({"content": "c", "reason": "heard", "activity": "a", "analyse": "better", "change": 35})
    return json.dumps({"thinking": "...", "response": "it has been a long week."})


def agent_script(prompt: str, turn: int, request_id: str) -> str:
    return AGENT_SAYS


async def test_simulated_user_runs_inside_the_agent_loop(tmp_path, chat_server, batch_for, compose, make_config):
    from transformers import AutoTokenizer
    from verl.experimental.agent_loop import AgentLoopWorker

    from traject.agents.hf import build_tiny_model

    # a Qwen3-style template, which drops earlier reasoning from the history
    tiny_model = build_tiny_model(tmp_path / "tiny_qwen3", template="qwen3")
    from traject.environments.users import default_cache
    from traject.trainers.verl.launcher import hydra_overrides, prepare

    default_cache().clear()
    user = chat_server(user_llm)
    cfg = make_config(tmp_path, tiny_model, env_name="empathy", env_config={"user_base_url": user.url, "user_model": "u", "rules": "rlver"},
                      tasks={"n": 2}, group_size=2, n_tasks=2, verl={"agent_workers": 1})
    files = prepare(cfg)
    conf = compose(hydra_overrides(cfg, files))
    client = ScriptedServerClient(conf, agent_script, str(tiny_model))
    out = await AgentLoopWorker(conf, client).generate_sequences(batch_for(conf, files.train_file, 2))

    tok = AutoTokenizer.from_pretrained(tiny_model)
    prompt_w = out.batch["prompts"].shape[1]
    # The template shows no reasoning in history, so the second turn's prompt is rendered
    # without the first turn's thinking (as HFPolicy, vLLM and `traject serve` render it): each
    # trajectory is two prefix-consistent segments (RLVER's rules, no clamp on a turn's change:
    # start 30, +35 per turn: 65, then 100 ends
    # the talk after the agent's second turn); this legacy worker trains the last one per row.
    assert len(out) == 4
    assert out.non_tensor_batch["traject_status"].tolist() == ["completed"] * 4
    later = 0
    for i in range(len(out)):
        n = int(out.batch["attention_mask"][i, prompt_w:].sum())
        n_prompt = int(out.batch["attention_mask"][i, :prompt_w].sum())
        prompt = tok.decode(out.batch["prompts"][i, prompt_w - n_prompt:].tolist())
        response = out.batch["responses"][i, :n].tolist()
        assert out.batch["response_mask"][i, :n].tolist() == [1] * n
        assert tok.decode(response) == AGENT_SAYS + "<|im_end|>"  # sampled, thinking included
        if "it has been a long week." in prompt:
            later += 1
            # the generation prompt (Qwen3's opens the thinking block)
            assert re.search(r"<\|im_start\|>user\nit has been a long week\.<\|im_end\|>\n<\|im_start\|>assistant\n"
                             r"(<think>\n)?$", prompt), prompt[-120:]
            assert "They feel unseen" not in prompt and "That sounds hard. Tell me more?<|im_end|>" in prompt
        assert float(out.batch["rm_scores"][i].sum()) == pytest.approx(1.0)  # emotion 100 / 100
    assert later == 4
    assert out.non_tensor_batch["traject_success"].tolist() == [1.0] * 4
    # the user simulator never saw the agent's private thinking
    assert user.requests and all("They feel unseen" not in json.dumps(r.body) for r in user.requests)
