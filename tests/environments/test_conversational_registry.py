"""Each conversational env is registered, makes with no arguments, loads its built-in tasks, and
runs end to end the way ``traject eval`` runs it (the user endpoint from the environment)."""

import json

import pytest

import traject
from traject.agents import Rollouts, ScriptedPolicy
from traject.environments.registry import registry
from traject.environments.users import default_cache
from traject.types import Message, Status, ToolCall

NAMES = ("sql", "search", "customer_service", "empathy")


@pytest.mark.parametrize("name", NAMES)
def test_registered_and_makes_without_arguments(name):
    entry = registry.get(name)
    assert entry.description and entry.tasks is not None
    env = traject.make(name)
    assert env.spec.name == name and env.reward is not None
    assert traject.load_tasks(name, n=2)


def reply_to(messages, tools):
    """A scripted agent that makes one sensible move per env, then answers in text."""
    names = {t.name for t in tools}
    k = sum(1 for m in messages if m.role == "assistant")
    if k == 0 and "execute_sql" in names:
        return Message.assistant(tool_calls=[ToolCall(name="execute_sql", arguments={"query": "SELECT 1"})])
    if k == 0 and "search" in names:
        return Message.assistant(tool_calls=[ToolCall(name="search", arguments={"query": messages[1].text})])
    return Message.assistant("<think>wrap up</think>All done. SELECT 1")


@pytest.mark.anyio
async def test_each_builtin_env_runs_end_to_end(chat_server, monkeypatch):
    def user(req):
        system = req.messages[0]["content"]
        if system.startswith("You analyse"):
            return json.dumps({"analyse": "fine", "change": 5})
        if system.startswith("You are an actor"):
            return json.dumps({"response": "ok. bye."})
        return "Hello." if len(req.messages) == 2 else "###STOP###"

    server = chat_server(user)
    monkeypatch.setenv("TRAJECT_USER_BASE_URL", server.url)
    default_cache().clear()
    for name in NAMES:
        tasks = traject.load_tasks(name, n=2)
        trajs = await Rollouts(ScriptedPolicy(reply_to), name, concurrency=2).run(tasks)
        assert [t.status for t in trajs] == [Status.COMPLETED] * 2, [(t.status, t.error) for t in trajs]
        assert all(t.reward is not None and not t.reward.failed for t in trajs), [t.reward for t in trajs]
