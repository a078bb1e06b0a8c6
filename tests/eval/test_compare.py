import json

import pytest
from PIL import Image

from traject.eval.compare import pareto_front, write_comparison
from traject.environments.builtin.lookup import solve


def test_pareto_front_by_hand():
    # (tokens, success): b is dominated by a (cheaper and better); c is better but dearer.
    assert pareto_front([(100, 0.8), (150, 0.7), (300, 0.9), (100, 0.8)]) == [True, False, True, True]


@pytest.mark.anyio
async def test_compare_writes_a_table_a_summary_and_a_pareto_plot(make_run, helpers, tmp_path):
    TokenCounting, half_right = helpers.TokenCounting, helpers.half_right
    cheap_bad = await make_run("cheap", TokenCounting(half_right, 100), pricing={"input_per_mtok": 1.0})
    dear_good = await make_run("dear", TokenCounting(solve, 400))
    dear_bad = await make_run("dear-bad", TokenCounting(half_right, 800))
    comparison, plot = write_comparison([cheap_bad, dear_good, dear_bad], tmp_path / "cmp")
    by_label = {p.label: p for p in comparison.runs}
    assert by_label["dear"].success.mean == 1.0
    assert 0 < by_label["cheap"].success.mean < 1
    # Three scripted calls per lookup episode: tokens per episode = 3 x (in + out).
    assert by_label["cheap"].mean_tokens == pytest.approx(3 * 125)
    assert [by_label[k].pareto for k in ("cheap", "dear", "dear-bad")] == [True, True, False]
    assert by_label["cheap"].cost_per_episode_usd == pytest.approx(300 / 1e6)
    saved = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert [r["label"] for r in saved["runs"]] == ["cheap", "dear", "dear-bad"]
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| dear | 100.0% [100.0, 100.0]" in md and "![success against tokens](pareto.png)" in md
    with Image.open(plot) as img:
        assert img.format == "PNG" and img.size[0] > 400
        colors = img.convert("RGB").getcolors(1 << 20)
        assert len(colors) > 50  # a drawn plot, not a blank canvas


@pytest.mark.anyio
async def test_compare_warns_about_a_run_given_twice_and_mixed_task_sets(make_run, tmp_path):
    from traject.agents.scripted import ScriptedPolicy
    from traject.eval.compare import compare_runs

    a = await make_run("a", ScriptedPolicy(solve), n=3, samples=1)
    b = await make_run("b", ScriptedPolicy(solve), n=4, samples=1)
    same = compare_runs([a, a])
    assert len(same.runs) == 1 and any("is the same run as" in w for w in same.warnings)
    mixed = compare_runs([a, b])
    assert any("differ in their tasks" in w and "3 tasks x 1" in w and "4 tasks x 1" in w for w in mixed.warnings)
    assert compare_runs([a]).warnings == []


def echo_env():
    from traject.environments import ToolEnv

    return ToolEnv([], name="echo")


def echo_tasks(split="test", n=1, seed=0):
    from traject.types import Task

    return [Task(id=f"e{i}", prompt="say something") for i in range(n)]


@pytest.mark.anyio
async def test_compare_warns_about_mixed_envs(tmp_path):
    from traject.agents.scripted import ScriptedPolicy
    from traject.environments.registry import EnvEntry
    from traject.eval.compare import compare_runs
    from traject.eval.config import EvalConfig, PolicyConfig, TaskSource
    from traject.eval.runner import run_eval
    from traject.types import Message

    globals()["ECHO"] = EnvEntry(name="echo", make=echo_env, tasks=echo_tasks)
    runs = []
    for env in ("lookup", f"{__name__}:ECHO"):
        config = EvalConfig(env=env, tasks=TaskSource(n=1), policy=PolicyConfig(kind="scripted", target="x"))
        out = tmp_path / env.replace(":", "_")
        await run_eval(config, out, policy=ScriptedPolicy([Message.assistant("done")]))
        runs.append(out)
    c = compare_runs(runs)
    assert any("different envs" in w and "lookup:" in w for w in c.warnings)
