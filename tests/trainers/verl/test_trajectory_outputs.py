"""TrajectAgentLoop made the way veRL makes it (hydra.utils.instantiate of the registered YAML
entry) and run on single rows: the V1 trainer's session semantics, the response budget, and
the per-process env pool."""

from __future__ import annotations

import pytest

verl = pytest.importorskip("verl", reason="the veRL extra is not installed (pip install 'traject[verl]')")

from traject.tools.base import ToolOutput  # noqa: E402
from traject.tools.context import ToolContext  # noqa: E402
from traject.tools.decorator import tool  # noqa: E402
from traject.trainers.verl.testing import LookupSolver, ScriptedServerClient  # noqa: E402
from traject.types import ImagePart, TextPart  # noqa: E402


def _screenshot() -> ImagePart:
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, format="PNG")
    return ImagePart(data=base64.b64encode(buf.getvalue()).decode())


@tool(name="lookup")
async def look_at_shelf(ctx: ToolContext, item: str) -> ToolOutput:
    """Look at the shop shelf.

    Args:
        item: The item.
    """
    return ToolOutput(content=[TextPart(text="the shelf:"), _screenshot()])

pytestmark = pytest.mark.anyio
SAMPLING = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "repetition_penalty": 1.0, "logprobs": True}


def make_loop(conf, files, client):
    import hydra
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap
    from verl.utils.dataset.rl_dataset import RLHFDataset

    entry = OmegaConf.load(files.agent_loop_config)[0]
    tok = AutoTokenizer.from_pretrained(conf.actor_rollout_ref.model.path)
    # the same call as veRL's AgentLoopWorker._run_agent_loop
    return hydra.utils.instantiate(config=entry, trainer_config=DictConfigWrap(config=conf),
                                   server_manager=client, tokenizer=tok, processor=None, hf_model_type="qwen2",
                                   dataset_cls=RLHFDataset, data_config=DictConfigWrap(conf.data), tools=None)


def row_kwargs(files, i: int = 0) -> dict:
    from traject.trainers.verl.dataset import read_rows

    row = read_rows(files.train_file)[i]
    return {"raw_prompt": row["prompt"], "extra_info": row["extra_info"], "agent_name": row["agent_name"],
            "data_source": row["data_source"], "reward_model": row["reward_model"],
            "index": row["extra_info"]["index"]}


async def test_v1_sessions_return_lists_and_drop_infra_errors(verl_setup, tiny_model):
    from verl.experimental.agent_loop import AgentLoopOutput

    _, files, conf = verl_setup(n_tasks=1)
    solver = LookupSolver(modes=("correct", "fail"))
    client = ScriptedServerClient(conf, solver, str(tiny_model))
    ok = await make_loop(conf, files, client).run(dict(SAMPLING), **row_kwargs(files), uid="u0", session_id=0)
    failed = await make_loop(conf, files, client).run(dict(SAMPLING), **row_kwargs(files), uid="u0", session_id=1)
    assert isinstance(ok, list) and len(ok) == 1 and isinstance(ok[0], AgentLoopOutput)
    assert ok[0].reward_score == 1.0 and ok[0].extra_fields["reward_extra_info"]["traject_answer_match"] == 1.0
    assert failed == []  # the V1 worker takes zero outputs: the session drops out of its group
    legacy = await make_loop(conf, files, client).run(dict(SAMPLING), **row_kwargs(files))
    assert isinstance(legacy, AgentLoopOutput)


async def test_response_budget_ends_the_episode_truncated(verl_setup, tiny_model):
    _, files, conf = verl_setup(n_tasks=1, response_length=64)
    client = ScriptedServerClient(conf, LookupSolver(modes=("ramble",)), str(tiny_model))
    loop = make_loop(conf, files, client)
    out = await loop.run(dict(SAMPLING), **row_kwargs(files))
    assert out.extra_fields["traject_status"] == "max_turns"
    assert out.extra_fields["reward_extra_info"]["traject_infra_error"] == 0.0  # trained, as a failure
    assert out.extra_fields["reward_extra_info"]["traject_truncated"] == 1.0
    assert out.reward_score == 0.0 and sum(out.response_mask) > 0
    assert len(out.response_ids) <= 64
    assert len(client.calls) < 6  # the budget ended it, not the env's turn limit (6)
    budgets = [c.max_tokens for c in client.calls]
    p0 = len(client.calls[0].prompt_ids)
    for c in client.calls:  # each turn may sample only what is left of the response budget
        assert c.max_tokens == 64 - (len(c.prompt_ids) - p0)
    assert budgets == sorted(budgets, reverse=True)


async def test_envs_are_pooled_per_worker_process(verl_setup, tiny_model):
    from traject.trainers.verl.worker import worker_state

    _, files, conf = verl_setup(n_tasks=2)
    client = ScriptedServerClient(conf, LookupSolver(modes=("correct",)), str(tiny_model))
    state = worker_state()
    before = state.envs_made("lookup", {})
    for i in range(4):
        out = await make_loop(conf, files, client).run(dict(SAMPLING), **row_kwargs(files, i % 2))
        assert out.reward_score == 1.0
    assert state.envs_made("lookup", {}) - before <= 1  # four episodes, one env made


async def test_images_to_a_text_only_model_stop_with_a_clear_error(verl_setup, tiny_model):
    """A GUI-like observation (a screenshot from a tool) sent to a model that cannot see."""
    from traject.environments.registry import register_env, registry
    from traject.environments.tool_env import ToolEnv
    from traject.trainers.verl.agent_loop import ModelCannotSeeImages

    registry.discover()
    register_env("test-shelf", lambda: ToolEnv([look_at_shelf], name="test-shelf"), replace=True)
    _, files, conf = verl_setup(n_tasks=1)
    client = ScriptedServerClient(conf, LookupSolver(modes=("correct",)), str(tiny_model))
    row = row_kwargs(files)
    row["extra_info"] = {**row["extra_info"], "env": "test-shelf"}
    with pytest.raises(ModelCannotSeeImages, match="env .test-shelf. shows the model images.*no multimodal processor"):
        await make_loop(conf, files, client).run(dict(SAMPLING), **row)
