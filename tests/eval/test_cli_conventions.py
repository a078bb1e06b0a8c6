"""The ``traject`` command keeps terminal conventions (real processes, output not a terminal):
one-line errors with rc 2 (bad input) or 1 (runtime failure), ``--debug`` tracebacks,
``--version``, defaults in ``--help``, no Rich markup, no hard wrap, progress lines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "traject.cli", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env})


def test_version_and_help_defaults():
    v = _cli("--version")
    assert v.returncode == 0 and v.stdout.startswith("traject ")
    h = _cli("eval", "--help")
    assert h.returncode == 0
    for default in ("[default: (16)]", "[default: (openai)]", "[default: (1024)]", "[default: 30.0]"):
        assert default in h.stdout, default
    assert "…" not in h.stdout


def test_errors_are_one_line_with_exit_codes_and_debug_shows_the_traceback(tmp_path):
    corrupt = tmp_path / "run"
    corrupt.mkdir()
    (corrupt / "trajectories.jsonl").write_text("garbage\n")
    cases = [
        (("view", str(corrupt)), 2, "trajectories.jsonl:1: not a trajectory record"),
        (("eval", "--env", "lookup", "--policy", "hf:/missing", "-o", str(tmp_path / "a")), 2, "hf:/missing: no model"),
        (("eval", "--env", "lookup", "--policy", "scripted:traject.testing.lookup_oracle:solve", "-o", "/proc/x"),
         2, "--out /proc/x: cannot write there"),
        (("eval", "--env", "nope", "--model", "m"), 2, "no env named 'nope'"),
        (("eval", "--bogus"), 2, "No such option: --bogus"),
    ]
    for args, rc, text in cases:
        p = _cli(*args)
        assert p.returncode == rc, (args, p.stdout, p.stderr)
        out = p.stdout + p.stderr
        assert text in out, (args, out)
        assert "Traceback" not in out and len(out.strip().splitlines()) <= 4, out
        assert "[red]" not in out and "[/" not in out
    # a runtime failure: rc 1, one line, and --debug shows where it came from
    env_file = tmp_path / "broken_env.py"
    env_file.write_text("def make():\n    raise OSError('the disk is on fire')\n")
    p = _cli("eval", "--env", "broken_env:make", "--model", "m", "-o", str(tmp_path / "b"),
             PYTHONPATH=f"{REPO}{os.pathsep}{tmp_path}")
    assert p.returncode == 1 and "OSError: the disk is on fire" in p.stderr and "Traceback" not in p.stderr
    assert "--debug" in p.stderr
    d = _cli("--debug", "eval", "--env", "broken_env:make", "--model", "m", "-o", str(tmp_path / "c"),
             PYTHONPATH=f"{REPO}{os.pathsep}{tmp_path}")
    assert d.returncode == 1 and "Traceback" in d.stderr


def test_output_that_is_not_a_terminal_gets_progress_lines_and_is_never_wrapped(tmp_path):
    out = tmp_path / ("a-long-run-directory-name-" * 4)
    p = _cli("eval", "--env", "lookup", "--policy", "scripted:traject.testing.lookup_oracle:solve", "-n", "3",
             "-o", str(out), "--progress-every", "0.05")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    progress = [line for line in lines if "episodes, success" in line]
    assert progress and progress[-1].startswith("lookup/scripted:traject.testing.lookup_oracle:solve: 3/3 episodes")
    assert any(str(out) in line for line in lines)  # the long path is never split over lines
    assert "\x1b[" not in p.stdout and "[/" not in p.stdout


def test_train_with_an_unknown_env_fails_in_one_line_before_anything_is_written(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("model:\n  tiny: {}\nenv:\n  name: no_such_env\n")
    p = subprocess.run([sys.executable, "-m", "traject.cli", "train", str(config)], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert p.returncode == 2, p.stderr
    assert "field 'env.name': no env named 'no_such_env'" in p.stderr
    assert "Traceback" not in p.stderr and "[red]" not in p.stderr + p.stdout
    assert sorted(x.name for x in tmp_path.iterdir()) == ["c.yaml"]  # no half-written run directory
