"""TrajectAgentLoop driven by veRL's own AgentLoopWorker, in-process, on the real hydra
config, the parquet traject exports, and traject's lookup env with its real tools. Only the
rollout server is scripted (an LLMServerClient subclass returning scripted token ids)."""

from __future__ import annotations

import pytest

verl = pytest.importorskip("verl", reason="the veRL extra is not installed (pip install 'traject[verl]')")

import itertools  # noqa: E402
import re  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from traject.trainers.verl.testing import LookupSolver, ScriptedServerClient  # noqa: E402

pytestmark = pytest.mark.anyio
MODES = ("correct", "wrong", "malformed", "fail")
OBSERVATION = re.compile(r"\n<\|im_start\|>user(\n<tool_response>\n((?!</?tool_response>).)*\n</tool_response>)+"
                         r"<\|im_end\|>\n<\|im_start\|>assistant\n", re.DOTALL)


def expected_response(calls):
    """From the server's log of one trajectory: the response ids after the first prompt, with
    mask 1 exactly where the server sampled and the sampled logprobs there."""
    p0 = calls[0].prompt_ids
    seq = list(p0)
    for c in calls:
        assert c.prompt_ids[: len(seq)] == seq, "a later prompt does not extend the sequence"
        seq = c.prompt_ids + c.token_ids
    mask = [0] * (len(seq) - len(p0))
    logprobs = [0.0] * len(mask)
    for c in calls:
        start = len(c.prompt_ids) - len(p0)
        for j, lp in enumerate(c.log_probs):
            mask[start + j] = 1
            logprobs[start + j] = lp
    return seq[len(p0):], mask, logprobs


def rows(out):
    """Per row: unpadded prompt, response, mask, logprobs and the rm_scores row."""
    prompt_w = out.batch["prompts"].shape[1]
    for i in range(len(out)):
        am = out.batch["attention_mask"][i]
        n_prompt = int(am[:prompt_w].sum())
        n_resp = int(am[prompt_w:].sum())
        yield dict(
            prompt=out.batch["prompts"][i, prompt_w - n_prompt:].tolist(),
            response=out.batch["responses"][i, :n_resp].tolist(),
            mask=out.batch["response_mask"][i, :n_resp].tolist(),
            mask_pad=out.batch["response_mask"][i, n_resp:].tolist(),
            logprobs=out.batch["rollout_log_probs"][i, :n_resp].tolist(),
            rm=out.batch["rm_scores"][i],
            n_resp=n_resp,
        )


async def test_agent_loop_worker_in_process(verl_setup, batch_for, tiny_model):
    from transformers import AutoTokenizer
    from verl.experimental.agent_loop import AgentLoopWorker
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

    from traject.trainers.verl.algorithms import ESTIMATORS

    compute_traject_grpo = ESTIMATORS["traject_grpo"]

    cfg, files, conf = verl_setup(n_tasks=4, group_size=2)
    from omegaconf import OmegaConf
    entries = OmegaConf.load(files.agent_loop_config)
    entries[0].reward_components = ["answer_match"]
    OmegaConf.save(entries, files.agent_loop_config)
    solver = LookupSolver(modes=MODES)
    client = ScriptedServerClient(conf, solver, str(tiny_model))
    worker = AgentLoopWorker(conf, client)  # loads the agent-loop YAML: registration by name
    batch = batch_for(conf, files.train_file, 2)
    assert list(batch.non_tensor_batch["agent_name"]) == ["traject"] * 8

    out = await worker.generate_sequences(batch)

    tok = AutoTokenizer.from_pretrained(tiny_model)
    nt = out.non_tensor_batch
    assert len(out) == 8
    modes = [solver.assigned[r] for r in nt["traject_request_id"]]
    assert sorted(modes) == sorted(MODES * 2)
    rewards = []
    for i, row in enumerate(rows(out)):
        mode = modes[i]
        calls = [c for c in client.calls if c.request_id == nt["traject_request_id"][i]]
        assert len({c.request_id for c in calls}) == 1  # one request id for every turn
        assert all(x == 0 for x in row["mask_pad"])
        info = {k: nt[k][i] for k in ("traject_score", "traject_success", "traject_infra_error",
                                      "traject_answer_match")}
        if mode == "fail":
            assert info["traject_infra_error"] == 1.0 and info["traject_answer_match"] == 0.0
            assert nt["traject_components"][i] == "{}"
            assert sum(row["mask"]) == 0  # nothing of it trains
            assert float(row["rm"].sum()) == 0.0
            assert nt["traject_status"][i] == "infra_error"
            rewards.append(0.0)
            continue
        response, mask, logprobs = expected_response(calls)
        assert row["prompt"] == calls[0].prompt_ids
        assert row["response"] == response
        assert row["mask"] == mask
        assert row["logprobs"] == pytest.approx(logprobs, abs=1e-6)
        # mask 0 exactly on observations: what is masked out is tool results and template glue
        runs = [(m, tok.decode([t for t, _ in grp])) for m, grp in
                itertools.groupby(zip(response, mask, strict=True), key=lambda x: x[1])]
        assert [m for m, _ in runs] == [1, 0] * (len(calls) - 1) + [1]
        for m, text in runs:
            if m == 0:  # only the rendered tool results, and the template's turn glue
                assert OBSERVATION.fullmatch(text), text
            else:  # only what the model sampled: one tool call, then its end-of-turn token
                assert text.endswith("</tool_call><|im_end|>") and text.count("<tool_call>") == 1, text
        if mode == "malformed":
            assert "could not be parsed" in runs[1][1]
        reward = 0.0 if mode == "wrong" else 1.0
        rewards.append(reward)
        assert info == {"traject_score": reward, "traject_success": reward, "traject_infra_error": 0.0,
                        "traject_answer_match": reward}
        # the reward reaches rm_scores, on the last response token
        assert float(row["rm"].sum()) == reward
        if reward:
            assert float(row["rm"][row["n_resp"] - 1]) == reward
        assert int(nt["__num_turns__"][i]) == 1 + 2 * len(calls)  # user, then (assistant, tool) per call
    assert "traject_answer_match" in out.meta_info["reward_extra_keys"]

    # veRL's GRPO computes on these rewards, grouped by the trainer's uid
    uid = nt["uid"]
    adv, _ = compute_grpo_outcome_advantage(out.batch["rm_scores"], out.batch["response_mask"], uid)
    ours, _ = compute_traject_grpo(out.batch["rm_scores"], out.batch["response_mask"], uid)
    mask = out.batch["response_mask"].bool()
    for a in (adv, ours):
        assert torch.all(a[~mask] == 0)
    for u in set(uid):
        idx = [i for i in range(8) if uid[i] == u]
        group = {modes[i]: i for i in idx}
        if {"correct", "wrong"} <= group.keys():
            assert float(adv[group["correct"]][mask[group["correct"]]].min()) > 0
            assert float(adv[group["wrong"]][mask[group["wrong"]]].max()) < 0
        if "fail" in group:
            other = next(i for i in idx if modes[i] != "fail")
            # stock GRPO counts the infra row as a 0 in the baseline; traject_grpo leaves it out,
            # and a lone healthy sample has nothing to compare with: advantage 0
            assert torch.all(ours[other] == 0) and torch.all(ours[idx[0] if idx[0] != other else idx[1]] == 0)
    assert np.isclose(float(adv.abs().sum()), float(adv.abs().sum()))
