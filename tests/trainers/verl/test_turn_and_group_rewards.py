"""Turn rewards and group rewards on the veRL engine, through veRL's own machinery on CPU.

* Per-turn rewards (CM2's checklist reward, judged by a scripted judge over HTTP) and
  per-step rewards (G-RA's gated step rewards over a real step reward) land in veRL's
  token-level scores on the last token of the turn they belong to: through the legacy
  AgentLoopWorker (as TrajectAgentLoopWorker, which the launcher selects) and through V1's
  ``AgentLoopOutput.as_dict``; then the registered traject_turn estimator spreads each
  turn's advantage over that turn's tokens.
* A GroupReward (majority vote) is scored over each task's G samples by the traject_group
  reward manager, registered in veRL's reward-manager registry and run inside veRL's own
  RewardLoopWorker (a Ray actor on a local CPU-only cluster, set up as the launcher sets Ray
  up), which veRL's AgentLoopWorker calls for each sample.
"""

from __future__ import annotations

import pytest

verl = pytest.importorskip("verl", reason="the veRL extra is not installed (pip install 'traject[verl]')")

import json  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from traject.trainers.verl.testing import LookupSolver, ScriptedServerClient  # noqa: E402

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parents[3]
SAMPLING = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "repetition_penalty": 1.0, "logprobs": True}


def make_gra_lookup():
    """The lookup env trained with G-RA: the outcome (answer match) gates 0.25 per valid tool
    call and -0.5 per invalid one, per step."""
    from traject.environments.builtin.lookup import lookup, submit
    from traject.environments.tool_env import ToolEnv
    from traject.rewards import AnswerMatch, GatedAccumulation, ToolCallValidity, ToolCallValidityConfig

    steps = ToolCallValidity(ToolCallValidityConfig(reward_per_valid_call=0.25, penalty_per_invalid_call=0.5))
    return ToolEnv([lookup, submit], name="lookup_gra", system_prompt="", max_turns=6,
                   reward=GatedAccumulation([(AnswerMatch(), 1.0), (steps, None)]))


@pytest.fixture(scope="module", autouse=True)
def gra_env():
    from traject.environments.builtin.lookup import lookup_tasks
    from traject.environments.registry import register_env

    register_env("lookup_gra", make_gra_lookup, tasks=lookup_tasks, description="lookup with G-RA step rewards")


def runs(mask: list[int]) -> list[tuple[int, int]]:
    from traject.trainers.verl.algorithms import turn_segments

    return turn_segments(torch.tensor([mask]))[0]


def stored(out_dir: Path) -> dict:
    from traject.types import Trajectory

    trajs = {}
    for f in (out_dir / "trajectories").glob("*.jsonl"):
        for line in f.read_text().splitlines():
            t = Trajectory.model_validate_json(line)
            trajs[t.id] = t
    return trajs


async def test_step_rewards_land_on_their_turns_tokens(verl_setup, batch_for, tiny_model, tmp_path, monkeypatch):
    from traject.trainers.config import AlgorithmConfig
    from traject.trainers.verl.algorithms import ALGORITHM_ENV, ESTIMATORS
    from traject.trainers.verl.worker_loop import TrajectAgentLoopWorker

    cfg, files, conf = verl_setup(n_tasks=2, group_size=3, env={"name": "lookup_gra"},
                                  algorithm={"advantage": "turn", "turn_rewards": "per_step"},
                                  verl={"use_v1": False})
    assert conf.actor_rollout_ref.rollout.agent.agent_loop_manager_class.endswith("TrajectAgentLoopManager")
    solver = LookupSolver(modes=("correct", "malformed", "wrong"))
    client = ScriptedServerClient(conf, solver, str(tiny_model))
    out = await TrajectAgentLoopWorker(conf, client).generate_sequences(batch_for(conf, files.train_file, 3))

    nt = out.non_tensor_batch
    trajs = stored(Path(cfg.trainer.out_dir))
    prompt_w = out.batch["prompts"].shape[1]
    seen = set()
    for i in range(len(out)):
        mode = solver.assigned[nt["traject_request_id"][i]]
        traj = trajs[nt["traject_trajectory_id"][i]]
        n_resp = int(out.batch["attention_mask"][i, prompt_w:].sum())
        mask = out.batch["response_mask"][i, :n_resp].tolist()
        rm = out.batch["rm_scores"][i]
        turns = runs(mask)
        assert len(turns) == len(traj.steps) == len(traj.reward.per_step)
        ends = [b - 1 for _, b in turns]
        # each turn's reward on its last token, nothing anywhere else
        assert rm[ends].tolist() == pytest.approx(traj.reward.per_step, abs=1e-6)
        assert float(rm.abs().sum()) == pytest.approx(sum(abs(x) for x in traj.reward.per_step), abs=1e-6)
        n = len(turns)
        if mode == "correct":  # every call valid, the outcome opens the gate: 0.25 a call, +1 at the end
            assert traj.reward.per_step == pytest.approx([0.25] * (n - 1) + [1.25])
        elif mode == "malformed":  # the broken call costs 0.5 on its own turn
            assert traj.reward.per_step == pytest.approx([-0.5] + [0.25] * (n - 2) + [1.25])
        else:  # a wrong answer closes the gate: no step reward counts
            assert traj.reward.per_step == pytest.approx([0.0] * n)
        seen.add(mode)
    assert seen == {"correct", "malformed", "wrong"}

    # traject_turn: a turn's advantage on all of that turn's tokens, turn by turn across the group
    monkeypatch.setenv(ALGORITHM_ENV, AlgorithmConfig(advantage="turn", turn_rewards="per_step").model_dump_json())
    adv, _ = ESTIMATORS["traject_turn"](out.batch["rm_scores"], out.batch["response_mask"], nt["uid"])
    for i in range(len(out)):
        mask = out.batch["response_mask"][i].tolist()
        for a, b in runs(mask):
            assert torch.all(adv[i, a:b] == adv[i, a])
        assert torch.all(adv[i][out.batch["response_mask"][i] == 0] == 0)
    first_turn = {}  # turn 0 of each sample: malformed (-0.5) below its group's mean, the others above
    for i in range(len(out)):
        a, _ = runs(out.batch["response_mask"][i].tolist())[0]
        first_turn[solver.assigned[nt["traject_request_id"][i]]] = float(adv[i, a])
    assert first_turn["malformed"] < 0 < first_turn["correct"]


async def test_v1_output_carries_the_turn_scores(verl_setup, tiny_model):
    """V1 (TransferQueue) builds each row from ``AgentLoopOutput.as_dict``."""
    import hydra
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from traject.trainers.verl.dataset import read_rows

    cfg, files, conf = verl_setup(n_tasks=1, group_size=1, env={"name": "lookup_gra"},
                                  algorithm={"advantage": "turn", "turn_rewards": "per_step"})
    client = ScriptedServerClient(conf, LookupSolver(modes=("malformed",)), str(tiny_model))
    entry = OmegaConf.load(files.agent_loop_config)[0]
    loop = hydra.utils.instantiate(config=entry, trainer_config=DictConfigWrap(config=conf), server_manager=client,
                                   tokenizer=AutoTokenizer.from_pretrained(tiny_model), processor=None,
                                   hf_model_type="qwen2", dataset_cls=RLHFDataset,
                                   data_config=DictConfigWrap(conf.data), tools=None)
    row = read_rows(files.train_file)[0]
    [output] = await loop.run(dict(SAMPLING), raw_prompt=row["prompt"], extra_info=row["extra_info"],
                              agent_name="traject", index=0, uid="u0", session_id=0)
    fields = output.as_dict()
    traj = next(iter(stored(Path(cfg.trainer.out_dir)).values()))
    ends = [b - 1 for _, b in runs(output.response_mask)]
    assert fields["rm_scores"].shape == (len(output.response_ids),)
    assert fields["rm_scores"][ends].tolist() == pytest.approx(traj.reward.per_step, abs=1e-6)
    assert traj.reward.per_step[0] == pytest.approx(-0.5)


@pytest.fixture
def ray_for(tmp_path):
    ray = pytest.importorskip("ray", reason="ray comes with the veRL extra")
    started = []

    def start(conf):
        """A local CPU-only Ray cluster with the runtime env the launcher gives veRL's."""
        runtime = conf.ray_kwargs.ray_init.runtime_env
        env_vars = {k: str(v) for k, v in runtime.env_vars.items()}
        env_vars["PYTHONPATH"] = str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")
        env_vars["TOKENIZERS_PARALLELISM"] = "false"
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": env_vars, "worker_process_setup_hook": runtime.worker_process_setup_hook})
        started.append(True)
        return ray

    yield start
    if started:
        ray.shutdown()


async def test_group_reward_through_verls_reward_loop(verl_setup, batch_for, tiny_model, ray_for):
    from verl.experimental.agent_loop import AgentLoopWorker
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    cfg, files, conf = verl_setup(n_tasks=2, group_size=4,
                                  env={"group_reward": "traject.rewards.consensus:MajorityVote"})
    assert conf.reward.reward_manager.name == "traject_group" and conf.reward.num_workers == 1
    settings = json.loads(conf.ray_kwargs.ray_init.runtime_env.env_vars.TRAJECT_GROUP_REWARD)
    assert settings["group_size"] == 4
    ray = ray_for(conf)
    reward_worker = ray.remote(RewardLoopWorker).remote(conf, None)  # as veRL's RewardLoopManager makes it
    solver = LookupSolver(modes=("correct", "wrong", "correct", "fail"))
    client = ScriptedServerClient(conf, solver, str(tiny_model))
    worker = AgentLoopWorker(conf, client, None, [reward_worker])
    batch = batch_for(conf, files.train_file, 4)
    out = await worker.generate_sequences(batch)

    nt = out.non_tensor_batch
    assert len(out) == 8
    by_uid: dict = {}
    for i in range(len(out)):  # the trainer joins the output with its batch (uid) row by row
        by_uid.setdefault(batch.non_tensor_batch["uid"][i], []).append(i)
    assert sorted(len(v) for v in by_uid.values()) == [4, 4]
    for idx in by_uid.values():
        modes = sorted(solver.assigned[nt["traject_request_id"][i]] for i in idx)
        assert modes == ["correct", "correct", "fail", "wrong"]
        for i in idx:
            mode = solver.assigned[nt["traject_request_id"][i]]
            score = float(out.batch["rm_scores"][i].sum())
            # own reward (answer match) + the vote: the two right answers agree, the wrong one
            # is outvoted; the infra error is not shown to score_group and trains nothing
            expected = {"correct": 2.0, "wrong": 0.0, "fail": 0.0}[mode]
            assert score == expected, (mode, score)
            assert nt["traject_group_reward"][i] == {"correct": 1.0, "wrong": 0.0, "fail": 0.0}[mode]
            assert nt["traject_infra_error"][i] == (1.0 if mode == "fail" else 0.0)
            if mode == "fail":
                assert int(out.batch["response_mask"][i].sum()) == 0


def cm2_item(iid, question, focus, weight):
    return {"id": iid, "question": question, "focus_on": focus, "pass_condition": f"pass {iid}",
            "failure_examples": [f"fail {iid}"], "evidence": [{"turn": 0, "step": 0, "from": focus, "snippet": "s"}],
            "required_for_next_turn": False, "dependence": [], "weight": weight}


CM2_CHECKLIST = [
    {"turn": 0, "items": [cm2_item("C0", "Called weather for Paris?", "assistant.tool_calls", 0.5),
                          cm2_item("C1", "Reported 18 C?", "assistant.content.user_visible_reply", 0.5)]},
    {"turn": 1, "items": [cm2_item("D0", "Reported 12 C in London?", "assistant.content.user_visible_reply", 1.0)]},
]


def make_cm2_weather(judge_url: str):
    """A two-user-turn weather env scored by CM2's checklist reward (judged over HTTP)."""
    from traject.environments.tool_env import ToolEnv
    from traject.environments.users.scripted import ScriptedUser
    from traject.rewards.checklist import ChecklistReward
    from traject.rewards.judge import JudgeConfig, LLMJudge
    from traject.tools.decorator import tool

    @tool(name="weather")
    async def weather(city: str) -> str:
        """The weather in a city.

        Args:
            city: The city.
        """
        return {"Paris": "18 C", "London": "12 C"}.get(city, "unknown city")

    judge = LLMJudge(JudgeConfig(base_url=judge_url, model="judge", backoff_s=0.01, parse_retries=0))
    return ToolEnv([weather], name="weather_cm2", system_prompt="", user=ScriptedUser(["And London?"]),
                   reward=ChecklistReward(judge))


def cm2_tasks(split: str = "train", n: int = 1, seed: int = 0, **_):
    from traject.types import Task

    return [Task(id=f"w{i}", prompt="Weather in Paris?", data={"checklist": CM2_CHECKLIST}) for i in range(n)]


def cm2_judge(req):
    """The judge passes every item but C1, so turn 0 scores 0.5 and turn 1 scores 1.0."""
    import re

    question = re.search(r"^Question: (.*)$", req.last_user_text, re.M).group(1)
    return json.dumps({"high_level_understanding_of_the_question": question, "analysis_of_if_focus_on": "-",
                       "analysis_of_pass_condition": "-", "analysis_of_failure_examples": "-",
                       "answer": question != "Reported 18 C?"})


def weather_script(prompt: str, turn: int, request_id: str) -> str:
    from traject.trainers.verl.testing import _call

    return [_call("weather", {"city": "Paris"}), "It is 18 C in Paris.",
            _call("weather", {"city": "London"}), "It is 12 C in London."][min(turn, 3)]


async def test_cm2_turn_rewards_land_on_their_turns_tokens(verl_setup, batch_for, tiny_model, chat_server):
    from traject.environments.registry import register_env
    from traject.trainers.verl.worker_loop import TrajectAgentLoopWorker

    judge = chat_server(cm2_judge)
    register_env("weather_cm2", make_cm2_weather, tasks=cm2_tasks, description="CM2-scored weather (test)")
    cfg, files, conf = verl_setup(n_tasks=1, group_size=2, env={"name": "weather_cm2", "config": {"judge_url": judge.url}},
                                  algorithm={"advantage": "turn", "turn_rewards": "per_turn"}, verl={"use_v1": False})
    client = ScriptedServerClient(conf, weather_script, str(tiny_model))
    out = await TrajectAgentLoopWorker(conf, client).generate_sequences(batch_for(conf, files.train_file, 2))

    prompt_w = out.batch["prompts"].shape[1]
    trajs = stored(Path(cfg.trainer.out_dir))
    for i in range(len(out)):
        traj = trajs[out.non_tensor_batch["traject_trajectory_id"][i]]
        assert traj.reward.per_turn == pytest.approx([0.5, 1.0]) and not traj.reward.failed
        n_resp = int(out.batch["attention_mask"][i, prompt_w:].sum())
        turns = runs(out.batch["response_mask"][i, :n_resp].tolist())
        assert len(turns) == 4  # call, reply | (user) | call, reply
        rm = out.batch["rm_scores"][i]
        ends = [b - 1 for _, b in turns]
        # each assistant message carries its conversation turn's reward, on its last token
        assert rm[ends].tolist() == pytest.approx([0.5, 0.5, 1.0, 1.0])
        assert float(rm.sum()) == pytest.approx(3.0)


async def test_v1_sessions_defer_the_score_and_report_every_sample(verl_setup, tiny_model):
    """With a group reward, V1 sessions leave the score to the reward loop, and a sample that
    must not train still reports (one row, nothing trainable), so its group is complete."""
    import hydra
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from traject.trainers.verl.dataset import read_rows

    _, files, conf = verl_setup(n_tasks=1, group_size=2, env={"group_reward": "traject.rewards.consensus:MajorityVote"})
    client = ScriptedServerClient(conf, LookupSolver(modes=("correct", "fail")), str(tiny_model))
    entry = OmegaConf.load(files.agent_loop_config)[0]
    assert entry.defer_reward is True
    row = read_rows(files.train_file)[0]

    async def session(i):
        loop = hydra.utils.instantiate(config=entry, trainer_config=DictConfigWrap(config=conf), server_manager=client,
                                       tokenizer=AutoTokenizer.from_pretrained(tiny_model), processor=None,
                                       hf_model_type="qwen2", dataset_cls=RLHFDataset,
                                       data_config=DictConfigWrap(conf.data), tools=None)
        return await loop.run(dict(SAMPLING), raw_prompt=row["prompt"], extra_info=row["extra_info"],
                              agent_name="traject", index=0, uid="u0", session_id=i)

    ok, failed = await session(0), await session(1)
    assert len(ok) == 1 and ok[0].reward_score is None and ok[0].extra_fields["traject_trainable"] is True
    assert "traject_trajectory" in ok[0].extra_fields
    assert not isinstance(failed, list) and failed.reward_score is None
    assert sum(failed.response_mask) == 0 and failed.extra_fields["traject_trainable"] is False
