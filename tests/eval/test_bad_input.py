"""Bad input: clear errors that name the file, the line or the field; infra failures counted apart."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from traject.eval.commands import EvalFlags, eval_command
from traject.eval.config import ConfigError, EvalConfig, PolicyConfig, TaskSource
from traject.eval.runner import run_eval
from traject.eval.task_file import load_task_file
from traject.testing import ScriptedReply
from traject.environments.builtin.lookup import chat_responder as responder


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.mark.parametrize(("lines", "expected"), [
    (['{"id": "a", "prompt": "x"}', '{"id": "b", "prompt": "y"'], r"tasks.jsonl:2:\d+: not valid JSON"),
    (['{"id": "a", "prompt": "x"}', "", '{"prompt": "y"}'], r"tasks.jsonl:3: missing required field 'id'"),
    (['{"id": "a", "prompt": 5}'], r"tasks.jsonl:1: field 'prompt'"),
    (['{"id": "a", "promt": "x"}'], r"tasks.jsonl:1: unknown field 'promt'"),
    (['{"id": "a"}', '{"id": "b"}', '{"id": "a"}'], r"tasks.jsonl:3: duplicate task id 'a' \(first on line 1\)"),
    (['["a", "b"]'], r"tasks.jsonl:1: expected a Task object"),
    ([], r"tasks.jsonl: the task file holds no tasks"),
])
def test_malformed_task_files_name_the_line(tmp_path, lines, expected):
    with pytest.raises(ConfigError, match=expected):
        load_task_file(_write(tmp_path / "tasks.jsonl", lines))


def test_config_file_errors_name_the_file_and_field(tmp_path):
    console = Console(record=True, width=200)
    bad_yaml = tmp_path / "c.yaml"
    bad_yaml.write_text("env: lookup\npolicy:\n  kind: openai\n  model: m\n    extra: x\n")
    assert eval_command(EvalFlags(config=str(bad_yaml), out=str(tmp_path / "r1")), console) == 2
    unknown = tmp_path / "c2.yaml"
    unknown.write_text("env: lookup\nsampels: 3\npolicy: {model: m}\n")
    assert eval_command(EvalFlags(config=str(unknown), out=str(tmp_path / "r2")), console) == 2
    wrong_type = tmp_path / "c3.json"
    wrong_type.write_text(json.dumps({"env": "lookup", "policy": {"model": "m"}, "concurrency": "many"}))
    assert eval_command(EvalFlags(config=str(wrong_type), out=str(tmp_path / "r3")), console) == 2
    assert eval_command(EvalFlags(env="no-such-env", model="m", out=str(tmp_path / "r4")), console) == 2
    assert eval_command(EvalFlags(env="lookup", env_config=["max_turns"], out=str(tmp_path / "r5")), console) == 2
    text = console.export_text()
    assert f"{bad_yaml}:5:" in text and "not valid YAML" in text
    assert "unknown field 'sampels'" in text and str(unknown) in text
    assert "field 'concurrency'" in text and str(wrong_type) in text
    assert "no env named 'no-such-env'" in text
    assert "expected KEY=VALUE" in text
    # Nothing was left behind by a run that never started.
    assert not (tmp_path / "r4").exists()


def test_a_bad_task_file_on_the_command_line_names_its_line(tmp_path):
    console = Console(record=True, width=200)
    tasks = _write(tmp_path / "t.jsonl", ['{"id": "a", "prompt": "x"}', '{"id": "b", "prompt": "y", "answer": 1,}'])
    flags = EvalFlags(env="lookup", model="m", tasks=str(tasks), out=str(tmp_path / "run"))
    assert eval_command(flags, console) == 2
    assert f"{tasks}:2:" in console.export_text()


def test_an_existing_run_is_not_overwritten_without_resume(tmp_path):
    console = Console(record=True, width=200)
    flags = EvalFlags(env="lookup", policy="scripted:traject.environments.builtin.lookup:solve", n=2,
                      out=str(tmp_path / "run"), quiet=True)
    assert eval_command(flags, console) == 0
    assert eval_command(flags, console) == 2
    assert "already holds a run: pass --resume" in console.export_text()


@pytest.mark.anyio
async def test_endpoint_failures_are_infra_errors_counted_apart_and_retried_on_resume(chat_server, tmp_path):
    healthy = responder()
    down = {"on": True}

    def flaky(req):
        # Tasks whose prompt mentions 'apple' meet an endpoint that answers 503 while it is down.
        if down["on"] and "apple" in req.last_user_text:
            return ScriptedReply(status=503, content="overloaded")
        return healthy(req)

    server = chat_server(flaky)
    config = EvalConfig(
        env="lookup", tasks=TaskSource(n=12, seed=1), samples=2, concurrency=6,
        policy=PolicyConfig(model="scripted", base_url=server.url, max_retries=2, options={"backoff_s": 0.01}),
    )
    run = tmp_path / "run"
    results = await run_eval(config, run)
    s = results.summary
    hit = sum(1 for r in (run / "tasks.jsonl").read_text().splitlines() if "apple" in json.loads(r)["prompt"])
    assert 0 < hit < 12
    assert s.counts.infra_error == 2 * hit and s.counts.scored == 2 * (12 - hit)
    assert s.success.mean == 1.0  # infra errors are not scored 0
    retried = [r for r in server.requests if "apple" in r.last_user_text]
    assert len(retried) == 2 * hit * 3  # one call and two retries per episode, then infra_error

    down["on"] = False
    again = config.model_copy(update={"retry_infra": True})
    results = await run_eval(again, run, resume=True)
    assert results.summary.counts.infra_error == 0 and results.summary.counts.scored == 24
    assert results.complete


@pytest.mark.parametrize(("data", "expected"), [
    ({"prices": {"apple": 3}}, r"t.jsonl:2: task 'b': field 'data.order': missing; env 'lookup' expects data with \{prices, order\}"),
    ({"prices": {"apple": "cheap"}, "order": [["apple", 1]]}, r"t.jsonl:2: task 'b': field 'data.prices.apple': Input should be a valid integer"),
    ({"prices": {}, "order": [], "colour": "red"}, r"t.jsonl:2: task 'b': field 'data.colour': not a field of the task data"),
])
def test_task_data_that_does_not_fit_the_env_is_refused_before_anything_runs(tmp_path, data, expected):
    good = {"id": "a", "prompt": "How much do 1 apple cost in total?", "data": {"prices": {"apple": 3}, "order": [["apple", 1]]}}
    tasks = _write(tmp_path / "t.jsonl", [json.dumps(good), json.dumps({"id": "b", "prompt": "x", "data": data})])
    console = Console(record=True, width=300)
    flags = EvalFlags(env="lookup", policy="scripted:traject.environments.builtin.lookup:solve", tasks=str(tasks),
                      out=str(tmp_path / "run"), quiet=True)
    assert eval_command(flags, console) == 2
    import re

    assert re.search(expected, console.export_text()), console.export_text()
    assert not (tmp_path / "run").exists()
