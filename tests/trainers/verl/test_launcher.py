"""The veRL engine's launcher on traject's one TrainConfig: config errors and engine refusals,
the override mapping, the CUDA refusal, and --dry-run commands that veRL's own hydra config
composes and validates (for each trainer mode)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from traject.trainers.config import ConfigError, config_from_dict, load_config
from traject.trainers.verl.launcher import LaunchFiles, hydra_overrides, plan

REPO = Path(__file__).resolve().parents[3]


def _write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "train.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def _config(tmp_path: Path, **sections) -> dict:
    data = {"backend": "verl", "model": {"path": str(tmp_path / "model"), "max_seq_len": 768},
            "env": {"name": "lookup", "tasks": {"split": "train", "n": 8, "seed": 1}},
            "eval": {"tasks": {"split": "test", "n": 4}},
            "rollout": {"group_size": 4, "tasks_per_step": 4},
            "trainer": {"out_dir": str(tmp_path / "run"), "steps": 5},
            "verl": {"max_prompt_length": 512}}
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return data


def test_backend_verl_in_yaml_and_the_verl_section(tmp_path):
    cfg = load_config(_write(tmp_path, _config(tmp_path, verl={"gpus_per_node": 2})))
    assert cfg.backend == "verl" and cfg.section("verl").gpus_per_node == 2
    # the same file on the local engine: the verl section is that engine's, the rest is shared
    local = load_config(_write(tmp_path, _config(tmp_path)), backend="local")
    assert local.backend == "local" and local.rollout.group_size == 4


def test_verl_section_errors_name_file_field_and_fix(tmp_path):
    p = _write(tmp_path, _config(tmp_path, verl={"gpus_per_nod": 2}, optim={"lr": -1}))
    with pytest.raises(ConfigError) as err:
        load_config(p)
    msg = str(err.value)
    assert f"{p}: verl.gpus_per_nod: unknown field" in msg and "did you mean 'gpus_per_node'" in msg


@pytest.mark.parametrize("backend, section, field, value, engine", [
    ("verl", "trainer", "threads", 2, "local engine"),
    ("verl", "rollout", "concurrency", 16, "local engine"),
    ("verl", "rollout", "ray", "auto", "local engine"),
    ("verl", "algorithm", "skip_zero_advantage", False, "local engine"),
    ("verl", "algorithm", "old_logprobs", "sampler", "local engine"),
    ("verl", "model", "dtype", "bfloat16", "local engine"),
    ("local", "trainer", "mode", "one_step_off", "backend: verl"),
    ("local", "algorithm", "advantage", "gae", "verl engine"),
])
def test_a_setting_the_engine_cannot_honour_is_refused(tmp_path, backend, section, field, value, engine):
    p = _write(tmp_path, _config(tmp_path, backend=backend, **{section: {field: value}}))
    with pytest.raises(ConfigError) as err:
        load_config(p)
    msg = str(err.value)
    assert f"{p}: {section}.{field}:" in msg and engine in msg and f"backend: {backend}" in msg
    assert "Fix:" in msg


def test_unknown_estimator_and_loss_list_the_known_names(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, _config(tmp_path, algorithm={"advantage": "gspo", "policy_loss": "cispo"})))
    msg = str(err.value)
    assert "algorithm.advantage" in msg and all(n in msg for n in ("'grpo'", "'dr_grpo'", "'rloo'", "'turn'", "'gae'"))
    assert "algorithm.policy_loss" in msg and "'ppo_clip'" in msg


@pytest.mark.parametrize("backend", ["local", "verl"])
def test_group_reward_with_a_group_of_one_is_refused(tmp_path, backend):
    p = _write(tmp_path, _config(tmp_path, backend=backend, rollout={"group_size": 1},
                                 env={"group_reward": "traject.rewards.gui.region_consistency:RegionConsistency"}))
    with pytest.raises(ConfigError, match=r"rollout.group_size: .*a group of 1 has nothing to compare"):
        load_config(p)
    turn = _write(tmp_path, _config(tmp_path, backend=backend, algorithm={"advantage": "turn"},
                                    env={"group_reward": "traject.rewards.consensus:MajorityVote"}))
    with pytest.raises(ConfigError, match=r"env.group_reward: the turn estimator .* count for nothing"):
        load_config(turn)


def test_overrides_map_the_shared_sections(tmp_path):
    cfg = config_from_dict(_config(tmp_path, optim={"lr": 3e-6, "warmup_steps": 3},
                                   algorithm={"kl_coef": 0.01, "advantage": "rloo", "mini_batches": 2,
                                              "tis_cap": 2.0, "dual_clip": 3.0},
                                   trainer={"checkpoint_every": 7, "wandb": True},
                                   verl={"overrides": ["trainer.save_freq=9"]}))
    files = LaunchFiles(tmp_path / "t.parquet", None, tmp_path / "a.yaml", tmp_path / "model")
    o = hydra_overrides(cfg, files)
    d = dict(x.split("=", 1) for x in o)
    assert d["algorithm.adv_estimator"] == "traject_rloo"
    assert d["actor_rollout_ref.actor.policy_loss.loss_mode"] == "traject_ppo_clip"
    assert d["actor_rollout_ref.rollout.n"] == "4" and d["data.train_batch_size"] == "4"
    assert d["actor_rollout_ref.actor.ppo_mini_batch_size"] == "2"
    assert d["actor_rollout_ref.actor.optim.lr"] == "3e-06"
    assert d["actor_rollout_ref.actor.optim.lr_warmup_steps"] == "3"
    assert d["actor_rollout_ref.actor.use_kl_loss"] == "true"
    assert d["actor_rollout_ref.actor.kl_loss_coef"] == "0.01"
    assert d["actor_rollout_ref.actor.clip_ratio_c"] == "3.0"
    assert d["algorithm.rollout_correction.rollout_is_threshold"] == "2.0"
    assert d["data.max_prompt_length"] == "512" and d["data.max_response_length"] == "256"
    assert d["trainer.total_training_steps"] == "5" and "trainer.save_freq=7" in o
    assert d["trainer.logger"] == "[console,wandb]"
    assert d["actor_rollout_ref.rollout.agent.agent_loop_config_path"] == str(tmp_path / "a.yaml")
    assert o[-1] == "trainer.save_freq=9"  # raw overrides come last, so they win
    assert "critic.model.path" not in d
    import json

    from traject.trainers.config import AlgorithmConfig

    sent = d["+ray_kwargs.ray_init.runtime_env.env_vars.TRAJECT_ALGORITHM"]
    assert AlgorithmConfig.model_validate(json.loads(sent.strip("'"))) == cfg.algorithm
    gae = hydra_overrides(config_from_dict(_config(tmp_path, algorithm={"advantage": "gae"})), files)
    assert "algorithm.adv_estimator=gae" in gae and f"critic.model.path={tmp_path / 'model'}" in gae


def _run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "traject.cli", "train", *args],
                          capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def test_refuses_at_once_without_a_cuda_gpu(tmp_path):
    """Through the real ``traject`` command, with CUDA hidden even where a GPU exists."""
    p = _write(tmp_path, _config(tmp_path))
    proc = _run_cli(str(p), "--backend", "verl", "trainer.save_freq=3", env={"CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 2, proc.stderr
    assert "needs CUDA GPUs" in proc.stderr and "--dry-run" in proc.stderr
    assert not (tmp_path / "run").exists()  # refused before writing anything
    # backend: verl in the file, no --backend: the same one-line refusal
    proc = _run_cli(str(p), env={"CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 2 and "needs CUDA GPUs" in proc.stdout + proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_config_file_is_one_clear_error(tmp_path, capsys):
    from traject.trainers.verl.launcher import run_cli

    p = tmp_path / "bad.yaml"
    p.write_text("model: [unclosed\n")
    assert run_cli(p, dry_run=True) == 2
    err = capsys.readouterr().err
    assert str(p) in err and "not valid YAML" in err


def _validate(cfg, overrides):
    from traject.trainers.verl.launcher import validate

    return validate(cfg, overrides)


def test_quickstart_dry_run_through_the_cli(tmp_path):
    """`traject train configs/quickstart.yaml --backend verl --dry-run`: exit 0, a main_ppo
    command that veRL's validate_config accepts."""
    pytest.importorskip("verl", reason="the veRL extra is not installed (pip install 'traject[verl]')")
    proc = _run_cli("configs/quickstart.yaml", "--backend", "verl", "--dry-run",
                    "--set", f"trainer.out_dir={tmp_path / 'qs'}")
    assert proc.returncode == 0, proc.stderr
    assert "All configuration checks passed" in proc.stdout + proc.stderr
    argv = shlex.split(proc.stdout.strip().splitlines()[-1])
    assert argv[1:3] == ["-m", "verl.trainer.main_ppo"]
    cfg = load_config(REPO / "configs/quickstart.yaml", [f"trainer.out_dir={tmp_path / 'qs'}"], backend="verl")
    overrides = [o if not o.startswith("actor_rollout_ref.model.path=")
                 else f"actor_rollout_ref.model.path={tmp_path / 'qs' / 'base_model'}" for o in argv[3:]]
    conf = _validate(cfg, overrides)
    assert conf.actor_rollout_ref.rollout.n == cfg.rollout.group_size == 8
    assert conf.algorithm.adv_estimator == "traject_grpo"
    assert conf.actor_rollout_ref.actor.clip_ratio_high == 0.28
    assert "sft_model" in [o for o in argv if o.startswith("actor_rollout_ref.model.path=")][0]


@pytest.mark.parametrize("extra, module", [
    ({"algorithm": {"kl_coef": 0.001}, "verl": {"gpus_per_node": 2}, "algorithm.mini_batches": 2}, "main_ppo"),
    ({"algorithm": {"advantage": "gae", "kl_coef": 0.01}, "verl": {"kl_mode": "reward"}}, "main_ppo"),
    ({"algorithm": {"advantage": "turn"}, "verl": {"use_v1": False, "strategy": "megatron"}}, "main_ppo"),
    ({"env": {"group_reward": "traject.rewards.gui.region_consistency:RegionConsistency"}}, "main_ppo"),
    ({"trainer": {"mode": "one_step_off"}}, "one_step_off_policy.main_ppo"),
    ({"trainer": {"mode": "fully_async"}}, "fully_async_policy.fully_async_main"),
])
def test_dry_run_command_composes_and_validates(tmp_path, extra, module, capsys):
    pytest.importorskip("verl", reason="the veRL extra is not installed (pip install 'traject[verl]')")
    from omegaconf import OmegaConf

    from traject.agents.hf import build_tiny_model
    from traject.trainers.verl.launcher import run_cli

    build_tiny_model(tmp_path / "model")
    extra = dict(extra)
    if "algorithm.mini_batches" in extra:
        extra["algorithm"] = {**extra["algorithm"], "mini_batches": extra.pop("algorithm.mini_batches")}
    p = _write(tmp_path, _config(tmp_path, **extra))
    assert run_cli(p, dry_run=True, overrides=["trainer.val_before_train=false"]) == 0
    out = capsys.readouterr()
    assert "validated with veRL's validate_config" in out.err
    argv = shlex.split(out.out.strip().splitlines()[-1])
    assert argv[1:3] == ["-m", f"verl.{'trainer' if module == 'main_ppo' else 'experimental'}.{module}"]
    assert argv[-1] == "trainer.val_before_train=false"
    tc = load_config(p)
    cfg = _validate(tc, argv[3:])
    assert cfg.actor_rollout_ref.rollout.n == tc.rollout.group_size
    assert cfg.data.train_batch_size == tc.rollout.tasks_per_step
    assert cfg.actor_rollout_ref.actor.optim.lr == tc.optim.lr
    assert cfg.algorithm.adv_estimator == {"gae": "gae"}.get(tc.algorithm.advantage, f"traject_{tc.algorithm.advantage}")
    assert cfg.actor_rollout_ref.actor.strategy == tc.section("verl").strategy
    assert bool(cfg.critic.enable) == (tc.algorithm.advantage == "gae")
    if tc.trainer.mode != "sync":
        assert cfg.actor_rollout_ref.rollout.n_gpus_per_node == tc.section("verl").gpus_per_node
    if tc.env.group_reward:
        assert cfg.reward.reward_manager.name == "traject_group" and cfg.reward.num_workers == 1
    if tc.algorithm.advantage == "turn":  # the legacy worker gets traject's per-turn scores
        assert cfg.actor_rollout_ref.rollout.agent.agent_loop_manager_class.endswith("TrajectAgentLoopManager")
    # the files it names exist and are what veRL reads
    assert Path(cfg.data.train_files).is_file() and Path(cfg.data.val_files).is_file()
    entries = OmegaConf.load(cfg.actor_rollout_ref.rollout.agent.agent_loop_config_path)
    assert [e.name for e in entries] == ["traject"]
    assert entries[0]["_target_"] == "traject.trainers.verl.agent_loop.TrajectAgentLoop"
    assert entries[0].env == "lookup" and entries[0].turn_scores == (tc.algorithm.advantage == "turn")
    # the names veRL is told exist in its registries once the setup hook has run
    hook = cfg.ray_kwargs.ray_init.runtime_env.worker_process_setup_hook
    module_name, fn = hook.rsplit(".", 1)
    getattr(__import__(module_name, fromlist=[fn]), fn)()
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn, get_policy_loss_fn

    get_adv_estimator_fn(cfg.algorithm.adv_estimator)
    get_policy_loss_fn(cfg.actor_rollout_ref.actor.policy_loss.loss_mode)


def test_plan_uses_task_files(tmp_path):
    from traject.trainers.verl.dataset import read_rows
    from traject.types import Task

    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("\n".join(Task(id=f"t{i}", prompt=f"q{i}", answer=i).model_dump_json() for i in range(5)))
    cfg = config_from_dict(_config(tmp_path, env={"tasks_path": str(tasks)}, eval={"tasks": {}}))
    p = plan(cfg, python="python3")
    rows = read_rows(p.files.train_file)
    assert [r["extra_info"]["task_id"] for r in rows] == [f"t{i}" for i in range(5)]
    assert p.files.val_file is None
    assert p.command[:3] == ["python3", "-m", "verl.trainer.main_ppo"]


def test_config_doc_example():
    import doctest

    import traject.trainers.verl.config as mod

    assert doctest.testmod(mod).failed == 0
