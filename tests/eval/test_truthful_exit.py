"""``traject eval`` tells the truth about failure: a run in which no episode could be scored
exits 1 with the most common cause; an endpoint that is down fails one check before anything
runs; ``--resume`` takes a corrected endpoint; a context overflow is scored, not an infra error."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from traject.eval.commands import EvalFlags, eval_command
from traject.testing import ScriptedReply
from traject.environments.builtin.lookup import chat_responder as responder


def boom(messages, tools):
    raise RuntimeError("the scripted policy broke")


def _run(flags: EvalFlags) -> tuple[int, str]:
    console = Console(record=True, width=300)
    rc = eval_command(flags, console)
    return rc, console.export_text()


@pytest.mark.parametrize(("reply", "cause"), [
    (ScriptedReply(status=500, content="engine died"), "HTTP 500: engine died"),
    (ScriptedReply(raw_body=b"<html>login page</html>"), "not JSON"),
    (ScriptedReply(raw_body=b'{"id": "x", "choices": []}'), "no choices"),
])
def test_a_run_where_every_episode_fails_exits_1_and_names_the_cause(chat_server, tmp_path, reply, cause):
    server = chat_server(lambda req: reply)
    config = tmp_path / "c.json"  # few, quick retries
    config.write_text(json.dumps({"env": "lookup", "policy": {"model": "m", "max_retries": 1,
                                                              "options": {"backoff_s": 0.01}}}))
    rc, out = _run(EvalFlags(base_url=server.url, n=3, out=str(tmp_path / "run"), quiet=True, config=str(config)))
    assert rc == 1, out
    assert "no episode of 3 could be scored" in out
    assert "most common cause (3x)" in out and cause in out


def test_an_exception_in_a_scripted_policy_is_reported_not_hidden(tmp_path):
    rc, out = _run(EvalFlags(env="lookup", policy=f"scripted:{__name__}:boom", n=2, out=str(tmp_path / "run"),
                             quiet=True))
    assert rc == 1
    assert "RuntimeError: the scripted policy broke" in out and "(2x)" in out


def test_an_endpoint_that_is_down_fails_one_check_before_anything_is_written(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    rc, out = _run(EvalFlags(env="lookup", model="m", base_url=f"http://127.0.0.1:{port}/v1", n=2,
                             out=str(tmp_path / "run"), quiet=True))
    assert rc == 1
    assert "is not answering" in out and "--base-url" in out
    assert not (tmp_path / "run").exists()


def test_resume_takes_a_corrected_endpoint_and_reruns_the_infra_errors(chat_server, tmp_path):
    broken = chat_server(lambda req: ScriptedReply(status=503, content="overloaded"))
    good = chat_server(responder())
    run = str(tmp_path / "run")
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"env": "lookup", "policy": {"model": "scripted", "max_retries": 1,
                                                              "options": {"backoff_s": 0.01}}}))
    rc, out = _run(EvalFlags(config=str(config), n=3, out=run, quiet=True, base_url=broken.url))
    assert rc == 1 and "HTTP 503" in out
    rc, out = _run(EvalFlags(out=run, resume=True, retry_infra=True, base_url=good.url, quiet=True))
    assert rc == 0, out
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())
    assert recorded["policy"]["base_url"] == good.url
    # the model name is part of what a run measures: changing it is refused
    rc, out = _run(EvalFlags(out=run, resume=True, model="other", quiet=True))
    assert rc == 2 and "policy.model" in out


def test_a_context_overflow_from_the_endpoint_is_scored_as_truncated(chat_server, tmp_path):
    healthy = responder()

    def overflow_on_second_turn(req):
        if sum(1 for m in req.messages if m["role"] == "assistant"):
            return ScriptedReply(status=400, content="This model's maximum context length is 4096 tokens. "
                                 "However, you requested 9000 tokens. Please reduce the length of the messages.")
        return healthy(req)

    server = chat_server(overflow_on_second_turn)
    rc, out = _run(EvalFlags(env="lookup", model="scripted", base_url=server.url, n=2, out=str(tmp_path / "run"),
                             quiet=True))
    assert rc == 0, out
    trajs = [json.loads(line) for line in (tmp_path / "run" / "trajectories.jsonl").read_text().splitlines()]
    assert [t["status"] for t in trajs] == ["max_turns", "max_turns"]
    assert all(t["reward"] is not None and "context" in t["info"]["truncated_by"] for t in trajs)
