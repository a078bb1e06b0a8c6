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


def _in_process(capsys, *args: str) -> tuple[int, str, str]:
    """The CLI's own entry path (``run_cli``), without a new interpreter."""
    from traject import cli_output
    from traject.cli import app

    try:
        rc = cli_output.run_cli(lambda **kw: app(list(args), **kw))
    finally:
        cli_output.debug = False
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_errors_are_one_line_with_exit_codes_and_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    corrupt = tmp_path / "run"
    corrupt.mkdir()
    (corrupt / "trajectories.jsonl").write_text("garbage\n")
    cases = [
        (("view", str(corrupt)), 2, "trajectories.jsonl:1: not a trajectory record"),
        (("eval", "--env", "lookup", "--policy", "hf:/missing", "-o", str(tmp_path / "a")), 2, "hf:/missing: no model"),
        (("eval", "--env", "lookup", "--policy", "scripted:traject.environments.builtin.lookup:solve", "-o", "/proc/x"),
         2, "--out /proc/x: cannot write there"),
        (("eval", "--env", "nope", "--model", "m"), 2, "no env named 'nope'"),
        (("eval", "--bogus"), 2, "No such option: --bogus"),
    ]
    for args, rc, text in cases:
        code, stdout, stderr = _in_process(capsys, *args)
        assert code == rc, (args, stdout, stderr)
        out = stdout + stderr
        assert text in out, (args, out)
        assert "Traceback" not in out and len(out.strip().splitlines()) <= 4, out
        assert "[red]" not in out and "[/" not in out
    # a runtime failure: rc 1, one line, and --debug shows where it came from
    env_file = tmp_path / "broken_env.py"
    env_file.write_text("def make():\n    raise OSError('the disk is on fire')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code, _, err = _in_process(capsys, "eval", "--env", "broken_env:make", "--model", "m", "-o", str(tmp_path / "b"))
    assert code == 1 and "OSError: the disk is on fire" in err and "Traceback" not in err
    assert "--debug" in err
    # a real process, so that the traceback really reaches stderr
    d = _cli("--debug", "eval", "--env", "broken_env:make", "--model", "m", "-o", str(tmp_path / "c"),
             PYTHONPATH=f"{REPO}{os.pathsep}{tmp_path}")
    assert d.returncode == 1 and "Traceback" in d.stderr and "the disk is on fire" in d.stderr


def test_output_that_is_not_a_terminal_gets_progress_lines_and_is_never_wrapped(tmp_path):
    out = tmp_path / ("a-long-run-directory-name-" * 4)
    p = _cli("eval", "--env", "lookup", "--policy", "scripted:traject.environments.builtin.lookup:solve", "-n", "3",
             "-o", str(out), "--progress-every", "0.05")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    progress = [line for line in lines if "episodes, success" in line]
    assert progress and progress[-1].startswith("lookup/scripted:traject.environments.builtin.lookup:solve: 3/3 episodes")
    assert any(str(out) in line for line in lines)  # the long path is never split over lines
    assert "\x1b[" not in p.stdout and "[/" not in p.stdout


def test_train_with_an_unknown_env_fails_in_one_line_before_anything_is_written(tmp_path, capsys, monkeypatch):
    config = tmp_path / "c.yaml"
    config.write_text("model:\n  tiny: {}\nenv:\n  name: no_such_env\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = _in_process(capsys, "train", str(config))
    assert code == 2, err
    assert "field 'env.name': no env named 'no_such_env'" in err
    assert "Traceback" not in err and "[red]" not in err + out
    assert sorted(x.name for x in tmp_path.iterdir()) == ["c.yaml"]  # no half-written run directory
