"""``traject serve`` is the real server: HTTP token-in/token-out policies against it give the
same ids, masks, logprobs and segments as the in-process HFPolicy; weight updates, policy
versions, context overflow and servers without token ids behave as documented."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import anyio
import pytest

from traject.agents import AgentLoop
from traject.agents.completions_policy import CompletionsPolicy
from traject.agents.openai_policy import OpenAIPolicy
from traject.agents.policy import PolicyError
from traject.agents.tokens import build_token_views
from traject.environments.builtin.lookup import lookup, submit
from traject.types import Message, Status

TOOLS = [lookup.schema, submit.schema]


def post(url: str, body: dict) -> tuple[int, dict, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), dict(e.headers)


def drive(policy, messages: list[Message]) -> list[Message]:
    """Three turns: a tool result after the first, a new user turn after the second (Qwen3's
    template then drops the earlier reasoning: a second segment)."""
    async def go() -> list[Message]:
        msgs = list(messages)
        for obs in ([Message.tool("4", tool_call_id="c1", name="lookup")], [Message.user("And 3 fig?")], []):
            out = await policy.act(msgs, TOOLS)
            msgs += [out.message, *obs]
        return msgs
    return anyio.run(go)


def assert_token_invariants(messages: list[Message]) -> None:
    """Every sampled id appears once, with mask 1 and its logprob; everything else mask 0, 0.0."""
    gens = [m.generation for m in messages if m.role == "assistant"]
    views = build_token_views(messages)
    masked = [(i, lp) for v in views for i, m, lp in zip(v.ids, v.mask, v.logprobs) if m]
    assert [i for i, _ in masked] == [t for g in gens for t in g.completion_ids]
    assert [lp for _, lp in masked] == [lp for g in gens for lp in g.logprobs]
    assert all(lp == 0.0 for v in views for m, lp in zip(v.mask, v.logprobs) if not m)


def test_http_token_paths_equal_the_in_process_policy(qwen3_model: Path, served) -> None:
    from traject.agents.hf import HFPolicy

    server = served(qwen3_model, max_new_tokens=64)
    start = [Message.system("Be exact."), Message.user("How much do 2 fig cost?")]
    local = drive(HFPolicy.from_pretrained(qwen3_model, temperature=0, max_new_tokens=6), start)
    ref = build_token_views(local)
    assert len(ref) == 2  # the reasoning-dropping template split the conversation
    base = server.base_url + "/v1"
    for dialect, transport in (("vllm", "lean"), ("sglang", "lean"), ("vllm", "sdk")):
        policy = CompletionsPolicy(model="tiny", base_url=base, tokenizer=str(qwen3_model), dialect=dialect,
                                   temperature=0, max_tokens=6, transport=transport)
        remote = drive(policy, start)
        views = build_token_views(remote)
        assert [(v.ids, v.mask, v.turn, v.prompt_len) for v in views] == \
            [(v.ids, v.mask, v.turn, v.prompt_len) for v in ref], dialect
        for v, r in zip(views, ref):
            assert v.logprobs == pytest.approx(r.logprobs, abs=1e-4)
            assert all((lp != 0.0) <= bool(m) for lp, m in zip(v.logprobs, v.mask))
        gens = [m.generation for m in remote if m.role == "assistant"]
        assert all(g.policy_version == 0 and g.text_mismatch is None for g in gens), dialect
    # The chat endpoint keeps the server's ids and logprobs too (vLLM's return_token_ids).
    chat = OpenAIPolicy(model="tiny", base_url=base, temperature=0, max_tokens=6)
    assert chat.wants_tokens
    out = anyio.run(chat.act, start, TOOLS)
    g, first = out.message.generation, local[2].generation
    assert (g.prompt_ids, g.completion_ids) == (first.prompt_ids, first.completion_ids)
    assert g.logprobs == pytest.approx(first.logprobs, abs=1e-4) and g.policy_version == 0
    # Over several turns the chat path's server-rendered prompts still give valid views.
    assert_token_invariants(local)
    assert_token_invariants(drive(chat, start))


def test_concurrent_requests_are_batched(qwen3_model: Path, served) -> None:
    # The batch closes when 4 requests wait (or after 30 s): 4 concurrent requests, one batch.
    server = served(qwen3_model, max_batch_size=4, batch_wait_s=30)
    policy = CompletionsPolicy(model="tiny", base_url=server.base_url + "/v1", tokenizer=str(qwen3_model),
                               max_tokens=4)
    results: dict[int, object] = {}

    async def go() -> None:
        async def one(k: int) -> None:
            results[k] = await policy.act([Message.user(f"How much do {k} fig cost?")], TOOLS)
        async with anyio.create_task_group() as tg:
            for k in range(4):
                tg.start_soon(one, k)
    anyio.run(go)
    assert server.engine.policy.batcher.stats.sizes == [4]
    assert len({tuple(r.message.generation.prompt_ids) for r in results.values()}) == 4


def test_weight_update_and_policy_versions(qwen3_model: Path, served, tmp_path: Path) -> None:
    from traject.agents.hf import build_tiny_model

    server = served(qwen3_model)
    url = server.base_url
    greedy = {"prompt": [5, 6, 7, 8], "max_tokens": 6, "temperature": 0, "return_token_ids": True}
    status, before, headers = post(url + "/v1/completions", greedy)
    assert status == 200 and before["policy_version"] == 0 and headers["x-policy-version"] == "0"
    for bad, reason in ((tmp_path / "nowhere", "is not a directory"), (tmp_path, "no \\*.safetensors"),
                        (build_tiny_model(tmp_path / "wide", template="qwen3", hidden_size=64), "other shapes")):
        status, body, _ = post(url + "/update_weights_from_disk", {"model_path": str(bad)})
        assert status == 400 and body["error"]["type"] == "BadRequestError", body
        assert __import__("re").search(reason, body["error"]["message"]), body
    # The old weights keep serving.
    assert post(url + "/v1/completions", greedy)[1]["choices"][0]["token_ids"] == before["choices"][0]["token_ids"]
    other = build_tiny_model(tmp_path / "other", template="qwen3", seed=1)
    status, body, headers = post(url + "/update_weights_from_disk", {"model_path": str(other), "policy_version": 7})
    assert status == 200 and body["success"] and body["policy_version"] == 7 and headers["x-policy-version"] == "7"
    # The same through a policy's own transport: the version goes up by one unless named.
    policy = CompletionsPolicy(model="tiny", base_url=url + "/v1", tokenizer=str(qwen3_model))
    assert anyio.run(policy.update_weights, str(other)) == 8
    assert anyio.run(policy.update_weights, str(other), 7) == 7
    with pytest.raises(PolicyError, match="is not a directory"):
        anyio.run(policy.update_weights, str(tmp_path / "nowhere"))
    status, after, _ = post(url + "/v1/completions", greedy)
    assert after["policy_version"] == 7 and after["choices"][0]["token_ids"] != before["choices"][0]["token_ids"]
    status, gen, _ = post(url + "/generate", {"input_ids": [5, 6, 7, 8], "sampling_params": {"max_new_tokens": 3},
                                              "return_logprob": True})
    assert gen["policy_version"] == 7 and len(gen["meta_info"]["output_token_logprobs"]) == len(gen["output_ids"]) == 3
    models = json.loads(urllib.request.urlopen(url + "/v1/models").read())["data"][0]
    assert models["policy_version"] == 7 and models["id"] == "tiny"


def test_context_overflow_is_a_scored_truncation(qwen3_model: Path, served) -> None:
    import traject

    server = served(qwen3_model, max_model_len=96)
    status, body, _ = post(server.base_url + "/v1/completions", {"prompt": [5] * 90, "max_tokens": 10})
    assert status == 400 and "maximum context length is 96" in body["error"]["message"]
    assert set(body["error"]) == {"message", "type", "param", "code"} and body["error"]["code"] == 400
    env = traject.make("lookup")
    task = traject.load_tasks("lookup", n=1)[0]
    for policy in (CompletionsPolicy(model="tiny", base_url=server.base_url + "/v1", tokenizer=str(qwen3_model),
                                     max_tokens=16),
                   OpenAIPolicy(model="tiny", base_url=server.base_url + "/v1", max_tokens=16)):
        traj = anyio.run(AgentLoop(policy).run, env, task)
        assert traj.status is Status.MAX_TURNS, (type(policy).__name__, traj.error)
        assert "context window" in traj.info["truncated_by"]
        assert traj.reward is not None and not traj.reward.failed  # scored, not an infra error


def test_server_without_token_ids_gives_eval_only_trajectories(chat_server, caplog) -> None:
    import traject
    from traject.trainers.batching import EvalOnlyTrajectories, select_trainable

    server = chat_server(['<tool_call>\n{"name": "submit", "arguments": {"answer": 3}}\n</tool_call>'] * 4)
    policy = OpenAIPolicy(model="m", base_url=server.url, tool_format="hermes", return_token_ids=True)
    env = traject.make("lookup")
    tasks = traject.load_tasks("lookup", n=2)
    with caplog.at_level(logging.WARNING, logger="traject.agents.served_tokens"):
        trajs = [anyio.run(AgentLoop(policy).run, env, t) for t in tasks]
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
    assert "returned no token ids" in caplog.records[0].message and len(caplog.records) == 1
    assert server.requests[0].body["return_token_ids"] is True and server.requests[0].body["logprobs"] is True
    assert all(t.eval_only and "carry no token ids" in t.eval_only and t.reward is not None for t in trajs)
    with pytest.raises(EvalOnlyTrajectories, match="2 of 2 trajectories are eval-only"):
        select_trainable(trajs)


def test_ids_that_do_not_decode_to_the_text_are_kept(qwen3_model: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(qwen3_model)
    policy = CompletionsPolicy(model="m", base_url="http://127.0.0.1:9/v1", tokenizer=tok)
    prompt, _ = policy.prompt([Message.user("Q")], TOOLS)
    ids = tok.encode("a\n</think>\n\nThe total is 8.", add_special_tokens=False)
    m = policy.finish(prompt, {"choices": [{"text": "The total is 9.", "token_ids": ids, "finish_reason": "length",
                                            "logprobs": {"token_logprobs": [-1.0] * len(ids)}}]})
    assert m.generation.completion_ids == ids and m.text == "The total is 8."
    assert "do not decode to the server's text" in m.generation.text_mismatch and policy.mismatches == 1
    bare = policy.finish(prompt, {"choices": [{"text": "b\n</think>\n\nThe total is 9.", "finish_reason": "stop"}]})
    assert bare.generation is None and (bare.reasoning, bare.text) == ("b", "The total is 9.")


def test_cli_serves_on_localhost(qwen3_model: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "traject.cli", "serve", str(qwen3_model), "--port", str(port),
                             "--model-name", "tiny"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                body = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5).read())
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()
                time.sleep(0.3)
        assert body["data"][0]["id"] == "tiny"
        if shutil.which("ss"):  # bound to loopback only
            listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
            assert [line.split()[3] for line in listening.splitlines()] == [f"127.0.0.1:{port}"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    bad = subprocess.run([sys.executable, "-m", "traject.cli", "serve", "/nonexistent/model"], env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "is not a directory" in bad.stdout + bad.stderr


def test_served_trajectories_reach_the_trainer(qwen3_model: Path, served) -> None:
    import traject
    from traject.trainers.batching import select_trainable, sequences_from_trajectories

    server = served(qwen3_model)
    policy = CompletionsPolicy(model="tiny", base_url=server.base_url + "/v1", tokenizer=str(qwen3_model),
                               max_tokens=8)
    env = traject.make("lookup")
    trajs = [anyio.run(AgentLoop(policy, max_steps=2).run, env, t) for t in traject.load_tasks("lookup", n=2)]
    kept, drops = select_trainable(trajs)
    assert len(kept) == 2 and drops.dropped == 0 and all(t.eval_only is None for t in kept)
    seqs = sequences_from_trajectories(kept, [1.0, -1.0])
    sampled = [len(m.generation.completion_ids) for t in kept for m in t.messages if m.role == "assistant"]
    assert sum(s.num_trained for s in seqs) == sum(sampled)
    assert all(m.generation.policy_version == 0 for t in kept for m in t.messages if m.role == "assistant")
