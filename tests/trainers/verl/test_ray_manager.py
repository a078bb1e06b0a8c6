"""The same path through veRL's AgentLoopManager: its agent-loop workers are Ray actors on a
local CPU-only Ray cluster, each importing traject, loading the agent-loop YAML and running
episodes of the lookup env against the scripted rollout client."""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

import pytest

verl = pytest.importorskip("verl", reason="the veRL extra is not installed (pip install 'traject[verl]')")
ray = pytest.importorskip("ray", reason="ray comes with the veRL extra")

from traject.trainers.verl.testing import LookupSolver, ScriptedServerClient  # noqa: E402
from traject.testing.ray_cluster import NODE_IP  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
OBSERVATION = re.compile(r"\n<\|im_start\|>user(\n<tool_response>\n((?!</?tool_response>).)*\n</tool_response>)+"
                         r"<\|im_end\|>\n<\|im_start\|>assistant\n", re.DOTALL)


@pytest.fixture
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address=NODE_IP,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                                       "TOKENIZERS_PARALLELISM": "false"}})
    try:
        yield
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_agent_loop_manager_on_ray_cpu_actors(verl_setup, batch_for, tiny_model, local_ray):
    from transformers import AutoTokenizer
    from verl.experimental.agent_loop import AgentLoopManager
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

    cfg, files, conf = verl_setup(n_tasks=4, group_size=2)
    client = ScriptedServerClient(conf, LookupSolver(modes=("correct", "wrong")), str(tiny_model))
    manager = AgentLoopManager.create(config=conf, llm_client=client)
    assert len(manager.agent_loop_workers) == 2  # rollout.agent.num_workers from the launcher
    batch = batch_for(conf, files.train_file, 2)

    out = manager.generate_sequences(batch)

    assert len(out) == 8
    tok = AutoTokenizer.from_pretrained(tiny_model)
    prompt_w = out.batch["prompts"].shape[1]
    scores = out.batch["rm_scores"].sum(-1).tolist()
    assert sorted(scores) == [0.0] * 4 + [1.0] * 4  # every group: one correct, one wrong
    assert out.non_tensor_batch["traject_score"].tolist() == scores
    pids = set()
    for i in range(len(out)):
        n = int(out.batch["attention_mask"][i, prompt_w:].sum())
        response = out.batch["responses"][i, :n].tolist()
        mask = out.batch["response_mask"][i, :n].tolist()
        assert out.batch["response_mask"][i, n:].sum() == 0
        runs = [(m, tok.decode([t for t, _ in g])) for m, g in
                itertools.groupby(zip(response, mask, strict=True), key=lambda x: x[1])]
        assert runs[0][0] == 1 and runs[-1][0] == 1 and len(runs) >= 3
        for m, text in runs:
            if m == 0:
                assert OBSERVATION.fullmatch(text), text
            else:
                assert text.endswith("</tool_call><|im_end|>") and text.count("<tool_call>") == 1
        lp = out.batch["rollout_log_probs"][i, :n]
        assert bool((lp[out.batch["response_mask"][i, :n] == 1] < 0).all())
        assert bool((lp[out.batch["response_mask"][i, :n] == 0] == 0).all())
        pids.add(out.non_tensor_batch["traject_request_id"][i])
    assert len(pids) == 8
    adv, _ = compute_grpo_outcome_advantage(out.batch["rm_scores"], out.batch["response_mask"],
                                            out.non_tensor_batch["uid"])
    m = out.batch["response_mask"].bool()
    for i, s in enumerate(scores):
        row = adv[i][m[i]]
        assert bool((row > 0).all()) if s == 1.0 else bool((row < 0).all())
