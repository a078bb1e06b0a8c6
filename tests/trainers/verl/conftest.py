"""Shared set-up for the veRL tests: a tiny local model, exported tasks, and veRL's own hydra
config composed with the launcher's overrides."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from traject.agents.hf import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_qwen"))


def compose_verl_config(overrides: list[str]):
    import verl
    from hydra import compose, initialize_config_dir

    config_dir = str(Path(verl.__file__).parent / "trainer" / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return compose(config_name="ppo_trainer", overrides=overrides)


def verl_config(tmp_path, model, *, env_name: str = "lookup", n_tasks: int = 3, group_size: int = 2,
                response_length: int = 512, env_config=None, tasks=None, **sections):
    """traject's one TrainConfig, for the veRL engine, on ``env_name``'s tasks (no eval set)."""
    from traject.trainers.config import config_from_dict

    data = {"backend": "verl",
            "model": {"path": str(model), "max_seq_len": 1024 + response_length},
            "env": {"name": env_name, "config": env_config or {},
                    "tasks": tasks or {"split": "train", "n": n_tasks, "seed": 3}},
            "eval": {"tasks": {}},
            "rollout": {"group_size": group_size, "tasks_per_step": n_tasks},
            "trainer": {"out_dir": str(tmp_path / "run")},
            "verl": {"agent_workers": 2, "max_prompt_length": 1024}}
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return config_from_dict(data)


@pytest.fixture
def make_config():
    """``make_config(tmp_path, model, **options)``: see verl_config."""
    return verl_config


@pytest.fixture
def verl_setup(tmp_path, tiny_model):
    """Export lookup tasks and compose the full main_ppo config for them; returns a factory
    ``setup(n_tasks=..., group_size=..., response_length=..., extra=[hydra overrides], **sections)``."""
    from traject.trainers.verl.launcher import compose, hydra_overrides, prepare

    def setup(n_tasks: int = 3, group_size: int = 2, response_length: int = 512, extra=(), **sections):
        cfg = verl_config(tmp_path, tiny_model, n_tasks=n_tasks, group_size=group_size,
                          response_length=response_length, **sections)
        files = prepare(cfg)
        conf = compose(cfg, hydra_overrides(cfg, files) + list(extra))
        return cfg, files, conf

    return setup


def load_batch(conf, train_file, group_size: int):
    """The training batch exactly as veRL's trainer builds it: RLHFDataset rows, collated,
    given a uid per prompt, repeated ``group_size`` times (interleaved)."""
    import uuid

    import numpy as np
    from transformers import AutoTokenizer
    from verl.protocol import DataProto
    from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

    tok = AutoTokenizer.from_pretrained(conf.actor_rollout_ref.model.path)
    ds = RLHFDataset(data_files=[str(train_file)], tokenizer=tok, config=conf.data, processor=None)
    batch = DataProto.from_single_dict(collate_fn([ds[i] for i in range(len(ds))]))
    batch.non_tensor_batch["uid"] = np.array([str(uuid.uuid4()) for _ in range(len(batch))], dtype=object)
    return batch.repeat(repeat_times=group_size, interleave=True)


@pytest.fixture
def batch_for():
    """``batch_for(conf, train_file, group_size)``: see load_batch."""
    return load_batch


@pytest.fixture
def compose():
    """``compose(overrides)``: veRL's ppo_trainer config with those overrides."""
    return compose_verl_config
