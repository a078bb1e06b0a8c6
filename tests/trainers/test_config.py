import pytest

from traject.trainers.config import ConfigError, apply_overrides, load_config

GOOD = """
model:
  tiny: {hidden_size: 64}
algorithm:
  advantage: dr_grpo
  clip_high: 0.28
optim:
  lr: 1.0e-3
"""


def write(tmp_path, text: str):
    p = tmp_path / "train.yaml"
    p.write_text(text)
    return p


def test_loads_and_overrides(tmp_path):
    cfg = load_config(write(tmp_path, GOOD), ["optim.lr=5e-4", "rollout.group_size=4", "trainer.steps=3",
                                              "env.tasks={split: train, n: 10}"])
    assert cfg.backend == "local"
    assert cfg.optim.lr == 5e-4 and cfg.rollout.group_size == 4 and cfg.trainer.steps == 3
    assert cfg.env.tasks == {"split": "train", "n": 10}
    assert cfg.algorithm.divide_by_std is False  # dr_grpo
    assert load_config(write(tmp_path, GOOD)).model.tiny.hidden_size == 64


def test_wrong_type_names_file_field_and_fix(tmp_path):
    p = write(tmp_path, GOOD.replace("clip_high: 0.28", "clip_high: wide"))
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    msg = str(exc.value)
    assert str(p) in msg and "algorithm.clip_high" in msg and "Fix: set algorithm.clip_high to a number" in msg


def test_unknown_field_suggests_the_close_one(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, GOOD), ["optim.learning_rat=1"])
    msg = str(exc.value)
    assert "optim.learning_rat" in msg and "--set" in msg
    with pytest.raises(ConfigError, match="did you mean 'clip_low'"):
        load_config(write(tmp_path, GOOD), ["algorithm.clip_lo=0.1"])


def test_bad_literal_lists_the_choices(tmp_path):
    with pytest.raises(ConfigError, match=r"algorithm.advantage.*one of 'grpo', 'dr_grpo', 'rloo'"):
        load_config(write(tmp_path, GOOD), ["algorithm.advantage=ppo2"])


def test_missing_model_and_cross_field_rules(tmp_path):
    with pytest.raises(ConfigError, match="model.path.*model.tiny"):
        load_config(write(tmp_path, "optim: {lr: 0.1}\n"))
    with pytest.raises(ConfigError, match="norm_length"):
        load_config(write(tmp_path, GOOD), ["algorithm.loss_agg=seq-mean-token-sum-norm"])
    with pytest.raises(ConfigError, match="unknown backend 'nope'"):
        load_config(write(tmp_path, GOOD), ["backend=nope"])


def test_yaml_and_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="line 3.*not valid YAML"):
        load_config(write(tmp_path, "model:\n  tiny: [\n"))
    with pytest.raises(ConfigError, match="expected key=value"):
        apply_overrides({}, ["optim.lr"])


def test_backend_sections_register(tmp_path):
    from pydantic import BaseModel, ConfigDict

    from traject.trainers import config as config_mod

    class Fake(BaseModel):
        model_config = ConfigDict(extra="forbid")
        nodes: int = 1

    config_mod.register_backend_section("fakebackend", Fake)
    try:
        cfg = load_config(write(tmp_path, GOOD + "fakebackend: {nodes: 4}\n"), backend="fakebackend")
        assert cfg.backend == "fakebackend" and cfg.section("fakebackend").nodes == 4
        with pytest.raises(ConfigError, match="fakebackend.nodes"):
            load_config(write(tmp_path, GOOD + "fakebackend: {nodes: many}\n"))
        with pytest.raises(ConfigError, match="other: unknown section"):
            load_config(write(tmp_path, GOOD + "other: {}\n"))
        with pytest.raises(ConfigError, match="did you mean 'algorithm'"):
            load_config(write(tmp_path, GOOD + "algorithms: {}\n"))
    finally:
        config_mod._BACKEND_SECTIONS.pop("fakebackend")
