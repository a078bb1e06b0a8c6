"""HFPolicy on whole episodes of the lookup env: token views that are exactly what was sampled."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

torch = pytest.importorskip("torch")
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from traject.agents import Rollouts  # noqa: E402
from traject.agents.hf import HFPolicy  # noqa: E402
from traject.agents.policy import ContextExhausted  # noqa: E402
from traject.environments.builtin.lookup import SYSTEM_PROMPT, lookup, lookup_tasks, submit  # noqa: E402
from traject.environments.tool_env import ToolEnv  # noqa: E402
from traject.episode import EpisodeInfo, reset_episode, set_episode  # noqa: E402
from traject.types import Message, Status, TokenView, Trajectory  # noqa: E402

TOOLS = [lookup.schema, submit.schema]
EOT = "<|im_end|>"


@pytest.fixture(scope="module")
def run(sft_path: Path) -> tuple[HFPolicy, list[Trajectory]]:
    policy = HFPolicy.from_pretrained(sft_path, max_new_tokens=40, batch_wait_s=0.02)
    tasks = lookup_tasks("test", n=2, seed=0, items_per_order=2)
    return policy, anyio.run(Rollouts(policy, "lookup", group_size=3, seed=7).run, tasks)


def _assistant(traj: Trajectory) -> list[Message]:
    return [m for m in traj.messages if m.role == "assistant"]


def _spans(view: TokenView) -> list[tuple[int, int]]:
    """(start, end) of each run of mask-1 tokens."""
    spans, i = [], 0
    while i < len(view.mask):
        if view.mask[i]:
            j = i
            while j < len(view.mask) and view.mask[j]:
                j += 1
            spans.append((i, j))
            i = j
        else:
            i += 1
    return spans


def test_episodes_are_multi_turn_and_batched(run) -> None:
    policy, trajs = run
    assert len(trajs) == 6 and all(t.status in (Status.COMPLETED, Status.MAX_TURNS) for t in trajs), \
        [(t.status, t.error) for t in trajs]
    assert max(t.num_turns for t in trajs) >= 3
    assert sum(1 for t in trajs for m in t.messages if m.role == "tool") >= 6
    assert all(len(t.token_views) == 1 for t in trajs)  # this template never rewrites history
    assert policy.batcher.stats.mean_batch_size > 1.5


def test_token_view_invariants(run) -> None:
    policy, trajs = run
    for traj in trajs:
        (view,) = traj.token_views
        assert len(view.ids) == len(view.mask) == len(view.logprobs) == len(view.turn)
        gens = [m.generation for m in _assistant(traj)]
        assert all(g is not None for g in gens)
        spans = _spans(view)
        # Every sampled token is in, as sampled, with its logprob; nothing else is masked in.
        assert len(spans) == len(gens)
        for k, (g, (start, end)) in enumerate(zip(gens, spans)):
            assert view.ids[:start] == g.prompt_ids            # the turn's prompt is a prefix
            assert view.ids[start:end] == g.completion_ids
            assert view.logprobs[start:end] == g.logprobs
            assert set(view.turn[start:end]) == {k}
            assert g.policy_version == 0 and g.finish_reason in ("stop", "length")
        assert sum(view.mask) == sum(len(g.completion_ids) for g in gens)
        for i, m in enumerate(view.mask):
            if not m:
                assert view.logprobs[i] == 0.0 and view.turn[i] == -1


def test_masked_tokens_decode_to_the_sampled_text(run) -> None:
    policy, trajs = run
    for traj in trajs:
        (view,) = traj.token_views
        for msg, (start, end) in zip(_assistant(traj), _spans(view)):
            g = msg.generation
            text = policy.completion_text(g.completion_ids)
            decoded = policy.tokenizer.decode(view.ids[start:end])
            assert decoded == text + (EOT if g.finish_reason == "stop" else "")
            parsed = policy.format.parse(text)
            assert msg.text == parsed.content
            assert [(c.name, c.arguments, c.error, c.raw) for c in msg.tool_calls] == \
                [(c.name, c.arguments, c.error, c.raw) for c in parsed.tool_calls]


def test_observation_tokens_are_the_template_delta(run) -> None:
    policy, trajs = run
    tok = policy.tokenizer
    seen_stop = False
    for traj in trajs:
        (view,) = traj.token_views
        spans = _spans(view)
        assistant_at = [i for i, m in enumerate(traj.messages) if m.role == "assistant"]
        for k in range(len(spans) - 1):
            obs_ids = view.ids[spans[k][1]: spans[k + 1][0]]
            obs = tok.decode(obs_ids)
            # Never sampled text: tokenised from the template's text.
            assert obs_ids == tok.encode(obs, add_special_tokens=False)
            g = traj.messages[assistant_at[k]].generation
            seen_stop |= g.finish_reason == "stop"
            assert obs.startswith("\n<|im_start|>user\n" if g.finish_reason == "stop" else EOT + "\n<|im_start|>user\n")
            assert obs.endswith("<|im_end|>\n<|im_start|>assistant\n")
            for m in traj.messages[assistant_at[k] + 1: assistant_at[k + 1]]:
                assert m.role == "tool" and f"<tool_response>\n{m.text}\n</tool_response>" in obs
    assert seen_stop


def test_first_prompt_is_the_chat_template(run) -> None:
    policy, trajs = run
    for traj in trajs:
        first = _assistant(traj)[0].generation
        text = policy.tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.text} for m in traj.messages[:2]],
            tools=[t.to_openai() for t in TOOLS], add_generation_prompt=True, tokenize=False)
        assert first.prompt_ids == policy.tokenizer.encode(text, add_special_tokens=False)


def test_recorded_logprobs_match_a_forward_pass(run, sft_path: Path) -> None:
    _, trajs = run
    model = AutoModelForCausalLM.from_pretrained(sft_path)
    model.eval()
    worst = 0.0
    with torch.no_grad():
        for traj in trajs:
            (view,) = traj.token_views
            ids = torch.tensor([view.ids])
            logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
            pos = [i for i, m in enumerate(view.mask) if m]
            recomputed = logp[torch.tensor(pos) - 1, ids[0, pos]]
            recorded = torch.tensor([view.logprobs[i] for i in pos])
            worst = max(worst, (recomputed - recorded).abs().max().item())
    assert worst < 1e-4, worst


def test_same_seed_same_episode(sft_path: Path) -> None:
    policy = HFPolicy.from_pretrained(sft_path, max_new_tokens=16)
    task = lookup_tasks("test", n=1, seed=3)[0]

    def once(seed: int) -> list[list[int]]:
        (traj,) = anyio.run(Rollouts(policy, "lookup", seed=seed).run, [task])
        return [m.generation.completion_ids for m in _assistant(traj)]

    assert once(1) == once(1)
    assert once(1) != once(2)


def test_act_runs_off_the_event_loop(sft_path: Path) -> None:
    policy = HFPolicy.from_pretrained(sft_path, max_new_tokens=40, temperature=0.0, stop_token_ids=[])
    stamps: list[float] = []

    async def main() -> float:
        done = anyio.Event()

        async def ticker() -> None:
            while not done.is_set():
                stamps.append(anyio.current_time())
                await anyio.sleep(0.002)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            out = await policy.act([Message.system(SYSTEM_PROMPT), Message.user("How much do 2 fig cost?")], TOOLS)
            done.set()
        return out.latency_s

    latency = anyio.run(main)
    # Generating on the loop would stall the ticker for the whole generation, in one gap.
    longest_gap = max((b - a for a, b in zip(stamps, stamps[1:])), default=latency)
    assert len(stamps) >= 5 and longest_gap < latency / 2, (len(stamps), longest_gap, latency)


def test_in_memory_model_sampling_options_and_errors(sft_path: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(sft_path)
    tok = AutoTokenizer.from_pretrained(sft_path)
    msgs = [Message.user("How much do 2 fig cost?")]
    greedy = HFPolicy(model, tok, temperature=0.0, max_new_tokens=12)
    token = set_episode(EpisodeInfo(episode_id="e", task_id="t", sample_index=0, seed=5))
    try:
        a = anyio.run(greedy.act, msgs, TOOLS)
        b = anyio.run(greedy.act, msgs, TOOLS)
    finally:
        reset_episode(token)
    assert a.message.generation.completion_ids == b.message.generation.completion_ids
    assert a.completion_tokens == len(a.message.generation.completion_ids) <= 12
    greedy.version = 3
    assert anyio.run(greedy.act, msgs, TOOLS).message.generation.policy_version == 3
    top1 = HFPolicy(model, tok, top_k=1, max_new_tokens=12)   # top-k 1 samples the argmax too
    assert anyio.run(top1.act, msgs, TOOLS).message.generation.completion_ids == a.message.generation.completion_ids
    nucleus = HFPolicy(model, tok, top_p=0.5, temperature=0.7, max_new_tokens=8)
    assert len(anyio.run(nucleus.act, msgs, TOOLS).message.generation.completion_ids) <= 8
    with pytest.raises(ValueError, match="needs tokenizer"):
        HFPolicy(model)
    with pytest.raises(FileNotFoundError, match="no model at"):
        HFPolicy("/nonexistent/model")
    with pytest.raises(ValueError, match="not a torch dtype"):
        HFPolicy(sft_path, dtype="float33")
    full = HFPolicy(model, tok, max_model_len=50)
    # A full context is the agent's own truncation (scored), not an infra failure.
    with pytest.raises(ContextExhausted, match="fills the model's context of 50"):
        anyio.run(full.act, [Message.system(SYSTEM_PROMPT), *msgs], TOOLS)


def test_text_tool_format(sft_path: Path) -> None:
    policy = HFPolicy.from_pretrained(sft_path, tools_in="format", tool_format="pythonic", max_new_tokens=8)
    prompt = policy.renderer.render_prompt([Message.user("Q")], TOOLS)
    assert "[func_name1(" in prompt.text and "<tools>" not in prompt.text
    out = anyio.run(policy.act, [Message.user("Q")], TOOLS)
    assert out.message.generation is not None


def _nudge_env() -> ToolEnv:
    return ToolEnv([lookup, submit], name="lookup_nudge", system_prompt=SYSTEM_PROMPT, max_turns=3,
                   on_text_reply="nudge")


def test_prefix_break_with_a_reasoning_dropping_template(tiny_qwen3_path: Path) -> None:
    # An untrained model after a "<think>" generation prompt writes only reasoning, gets
    # nudged by a user turn, and the template then drops its earlier reasoning.
    policy = HFPolicy.from_pretrained(tiny_qwen3_path, max_new_tokens=10)
    tasks = lookup_tasks("test", n=2, seed=0)
    trajs = anyio.run(Rollouts(policy, _nudge_env, group_size=1, seed=3).run, tasks)
    assert all(t.status is Status.MAX_TURNS for t in trajs), [(t.status, t.error) for t in trajs]
    for traj in trajs:
        assistant = _assistant(traj)
        assert len(assistant) == 3 and any(m.reasoning for m in assistant)
        assert len(traj.token_views) > 1
        views = iter(traj.token_views)
        view = next(views)
        in_segment: list[int] = []  # turns of the current segment
        seen = 0  # length of the sequence so far in this segment
        for k, m in enumerate(assistant):
            g = m.generation
            if k and g.prompt_ids[:seen] != view.ids[:seen]:
                view = next(views)  # a break: the next segment starts with this prompt
                in_segment = []
                assert view.prompt_len == len(g.prompt_ids)
                # A fresh render, without the reasoning of earlier turns.
                assert g.prompt_ids == policy.tokenizer.encode(
                    policy.renderer.render_text(traj.messages[: traj.messages.index(m)], TOOLS,
                                                add_generation_prompt=True), add_special_tokens=False)
                assert assistant[k - 1].reasoning not in policy.tokenizer.decode(g.prompt_ids)
            start = len(g.prompt_ids)
            end = start + len(g.completion_ids)
            # Self-consistent: the prompt is a prefix, the completion follows as sampled, and the
            # only trained tokens before it are this segment's earlier completions.
            assert view.ids[:start] == g.prompt_ids
            assert view.ids[start:end] == g.completion_ids and view.mask[start:end] == [1] * (end - start)
            assert view.logprobs[start:end] == g.logprobs and set(view.turn[start:end]) == {k}
            assert sum(view.mask[:start]) == sum(len(assistant[j].generation.completion_ids) for j in in_segment)
            in_segment.append(k)
            seen = end
        assert next(views, None) is None
