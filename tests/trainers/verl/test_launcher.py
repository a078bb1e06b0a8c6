"""The veRL launcher: config errors, the override mapping, the CUDA refusal, and a --dry-run
command that veRL's own hydra config composes and validates."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from traject.trainers.verl.config import ConfigFileError, TrainConfig, load_train_config
from traject.trainers.verl.launcher import LaunchFiles, hydra_overrides, plan

REPO = Path(__file__).resolve().parents[3]


def _write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "train.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def _config(tmp_path: Path, **extra) -> dict:
    return {"model": str(tmp_path / "model"), "env": "lookup",
            "tasks": {"split": "train", "n": 8, "seed": 1}, "group_size": 4, "batch_size": 4,
            "max_prompt_length": 512, "max_response_length": 256, "output_dir": str(tmp_path / "run"),
            **extra}


def test_config_errors_name_file_field_and_fix(tmp_path):
    p = _write(tmp_path, {"model": "m", "env": "lookup", "group_sise": 4, "lr": -1})
    with pytest.raises(ConfigFileError) as err:
        load_train_config(p)
    msg = str(err.value)
    assert str(p) in msg
    assert "field `group_sise`" in msg and "remove it" in msg
    assert "field `lr`" in msg
    missing = _write(tmp_path, {"env": "lookup"})
    with pytest.raises(ConfigFileError, match=r"field `model`: Field required; add it"):
        load_train_config(missing)
    with pytest.raises(ConfigFileError, match="group_size >= 2"):
        load_train_config(_write(tmp_path, {"model": "m", "env": "lookup", "group_size": 1}))


def test_overrides_map_traject_fields(tmp_path):
    cfg = TrainConfig.model_validate(_config(tmp_path, lr=3e-6, kl_coef=0.01, algorithm="rloo",
                                             verl={"overrides": ["trainer.save_freq=7"]}))
    files = LaunchFiles(tmp_path / "t.parquet", None, tmp_path / "a.yaml")
    o = hydra_overrides(cfg, files)
    d = dict(x.split("=", 1) for x in o)
    assert d["algorithm.adv_estimator"] == "rloo"
    assert d["actor_rollout_ref.rollout.n"] == "4"
    assert d["actor_rollout_ref.actor.optim.lr"] == "3e-06"
    assert d["actor_rollout_ref.actor.use_kl_loss"] == "true"
    assert d["actor_rollout_ref.actor.kl_loss_coef"] == "0.01"
    assert d["data.max_response_length"] == "256"
    assert d["actor_rollout_ref.rollout.agent.agent_loop_config_path"] == str(tmp_path / "a.yaml")
    assert d["trainer.logger"] == "[console]"
    assert o[-1] == "trainer.save_freq=7"  # raw overrides come last, so they win
    assert "critic.model.path" not in d
    ppo = hydra_overrides(cfg.model_copy(update={"algorithm": "ppo"}), files)
    assert "algorithm.adv_estimator=gae" in ppo and f"critic.model.path={cfg.model}" in ppo


def _run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "traject.cli", "train", "--backend", "verl", *args],
                          capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def test_refuses_at_once_without_a_cuda_gpu(tmp_path):
    """Through the real ``traject`` command, with CUDA hidden even where a GPU exists."""
    p = _write(tmp_path, _config(tmp_path))
    t0 = time.perf_counter()
    proc = _run_cli(str(p), "trainer.save_freq=3", env={"CUDA_VISIBLE_DEVICES": ""})
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 2, proc.stderr
    assert "needs CUDA GPUs" in proc.stderr and "--dry-run" in proc.stderr
    assert not (tmp_path / "run").exists()  # refused before writing anything
    assert elapsed < 120


def test_bad_config_file_is_one_clear_error(tmp_path, capsys):
    from traject.trainers.verl.launcher import run_cli

    p = tmp_path / "bad.yaml"
    p.write_text("model: [unclosed\n")
    assert run_cli(p, dry_run=True) == 2
    err = capsys.readouterr().err
    assert str(p) in err and "not valid YAML" in err


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    verl = pytest.importorskip("verl", reason="the veRL extra is not installed (pip install 'traject[verl]')")
    config_dir = str(Path(verl.__file__).parent / "trainer" / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return compose(config_name="ppo_trainer", overrides=overrides)


def _validate(cfg) -> None:
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))


@pytest.mark.parametrize("extra", [
    {},
    {"kl_coef": 0.001, "algorithm": "grpo", "verl": {"gpus_per_node": 2, "ppo_mini_batch_size": 2}},
    {"algorithm": "ppo", "kl_coef": 0.01, "kl_mode": "reward"},
    {"verl": {"use_v1": False, "strategy": "megatron"}},
])
def test_dry_run_command_composes_and_validates(tmp_path, extra, capsys):
    pytest.importorskip("verl", reason="the veRL extra is not installed (pip install 'traject[verl]')")
    from omegaconf import OmegaConf

    from traject.agents.hf import build_tiny_model
    from traject.trainers.verl.launcher import run_cli

    build_tiny_model(tmp_path / "model")
    p = _write(tmp_path, _config(tmp_path, val_tasks={"split": "test", "n": 4}, **extra))
    assert run_cli(p, dry_run=True, overrides=["trainer.save_freq=3"]) == 0
    argv = shlex.split(capsys.readouterr().out.strip().splitlines()[-1])
    assert argv[1:3] == ["-m", "verl.trainer.main_ppo"]
    overrides = argv[3:]
    assert overrides[-1] == "trainer.save_freq=3"

    cfg = _compose(overrides)
    _validate(cfg)
    tc = load_train_config(p)
    assert cfg.actor_rollout_ref.rollout.n == tc.group_size
    assert cfg.data.train_batch_size == tc.batch_size
    assert cfg.actor_rollout_ref.actor.optim.lr == tc.lr
    assert cfg.trainer.save_freq == 3
    if tc.verl.use_v1:
        assert cfg.algorithm.adv_estimator == {"ppo": "gae"}.get(tc.algorithm, tc.algorithm)
    else:  # the legacy trainer gets traject_grpo, registered in every Ray worker process
        assert cfg.algorithm.adv_estimator == "traject_grpo"
        hook = cfg.ray_kwargs.ray_init.runtime_env.worker_process_setup_hook
        from traject.trainers.verl.advantage import NAME, register

        assert hook == f"{register.__module__}.{register.__name__}"
        register()
        from verl.trainer.ppo.core_algos import get_adv_estimator_fn

        assert get_adv_estimator_fn(NAME).__name__ == "compute_traject_grpo"
    assert cfg.actor_rollout_ref.actor.strategy == tc.verl.strategy
    assert bool(cfg.actor_rollout_ref.actor.use_kl_loss) == (tc.kl_coef > 0 and tc.kl_mode == "loss")
    assert bool(cfg.algorithm.use_kl_in_reward) == (tc.kl_coef > 0 and tc.kl_mode == "reward")
    # the files it names exist and are what veRL reads
    assert Path(cfg.data.train_files).is_file() and Path(cfg.data.val_files).is_file()
    entries = OmegaConf.load(cfg.actor_rollout_ref.rollout.agent.agent_loop_config_path)
    assert [e.name for e in entries] == ["traject"]
    assert entries[0]["_target_"] == "traject.trainers.verl.agent_loop.TrajectAgentLoop"
    assert entries[0].env == "lookup"


def test_plan_uses_task_files_and_loaders(tmp_path):
    from traject.trainers.verl.dataset import read_rows
    from traject.types import Task

    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("\n".join(Task(id=f"t{i}", prompt=f"q{i}", answer=i).model_dump_json() for i in range(5)))
    cfg = TrainConfig.model_validate(_config(tmp_path, tasks={"path": str(tasks), "n": 3}))
    p = plan(cfg, python="python3")
    rows = read_rows(p.files.train_file)
    assert [r["extra_info"]["task_id"] for r in rows] == ["t0", "t1", "t2"]
    assert p.command[:3] == ["python3", "-m", "verl.trainer.main_ppo"]


def test_config_doc_example():
    import doctest

    import traject.trainers.verl.config as mod

    assert doctest.testmod(mod).failed == 0
