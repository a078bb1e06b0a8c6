import yaml
from typer.testing import CliRunner

from traject.cli import app
from traject.trainers.config import load_config
from traject.trainers.quickstart import QUICKSTART, quickstart_config


def test_train_reports_a_bad_config(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("model: {tiny: {}}\noptim: {lr: fast}\n")
    result = CliRunner().invoke(app, ["train", str(p), "--set", "rollout.group_size=4"])
    assert result.exit_code == 2
    assert str(p) in result.output and "optim.lr" in result.output and "Fix:" in result.output


def test_train_rejects_an_unknown_backend(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model: {tiny: {}}\n")
    result = CliRunner().invoke(app, ["train", str(p), "--backend", "nosuch"])
    assert result.exit_code == 2 and "unknown backend 'nosuch'" in result.output


def test_quickstart_yaml_is_the_quickstart_run():
    """configs/quickstart.yaml (for `traject train`) and `traject quickstart` run the same thing."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml"
    assert yaml.safe_load(path.read_text()) == QUICKSTART
    assert load_config(path) == quickstart_config()


def test_quickstart_options_reach_the_config(tmp_path):
    cfg = quickstart_config(out=tmp_path / "q", seed=3, steps=5, overrides=["optim.lr=1e-3"])
    assert cfg.trainer.seed == 3 and cfg.model.tiny.seed == 3 and cfg.trainer.steps == 5
    assert cfg.trainer.out_dir == str(tmp_path / "q") and cfg.optim.lr == 1e-3
