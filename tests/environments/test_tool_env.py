import time

import anyio
import pytest

import traject
from traject.environments import ToolEnv
from traject.environments.users import UserSimulator, UserTurn
from traject.tools import ToolOutput, Toolset, tool
from traject.types import InfraError, Message, Task, ToolCall


@tool
async def slow(seconds: float) -> str:
    """Sleep."""
    await anyio.sleep(seconds)
    return f"slept {seconds}"


@tool
def boom() -> str:
    """Raise."""
    raise RuntimeError("kaput")


@tool
async def finish(answer: str) -> ToolOutput:
    """Submit."""
    return ToolOutput(content="ok", done=True, final_answer=answer, reward=0.25)


@tool
async def dead() -> ToolOutput:
    """Infra failure."""
    return ToolOutput(content="db went away", infra_error=True)


def _env(**kw) -> ToolEnv:
    return ToolEnv([slow, boom, finish, dead], system_prompt="sys", tool_timeout_s=0.5, **kw)


def _call(name, **args) -> ToolCall:
    return ToolCall(name=name, arguments=args)


@pytest.mark.anyio
async def test_every_bad_call_becomes_an_error_observation_and_the_episode_goes_on():
    env = _env(max_turns=5)
    msgs = await env.reset(Task(id="t", prompt="go"))
    assert [m.role for m in msgs] == ["system", "user"]
    action = Message.assistant("", tool_calls=[
        ToolCall(name="", error="not JSON", raw="<tool_call>{"),
        _call("nope"),
        _call("slow", seconds="soon"),
        _call("boom"),
        _call("slow", seconds=5),
        _call("slow", seconds=0.01),
    ])
    t0 = time.perf_counter()
    r = await env.step(action)
    assert time.perf_counter() - t0 < 3
    assert not r.done
    kinds = [tr.error_kind for tr in r.tool_results]
    assert kinds == ["format", "unknown_tool", "arguments", "raised", "timeout", None]
    texts = [o.text for o in r.observations]
    assert "could not be parsed: not JSON" in texts[0]
    assert "Available tools: boom, dead, finish, slow" in texts[1]
    assert "argument 'seconds'" in texts[2]
    assert "RuntimeError: kaput" in texts[3]
    assert "did not finish within 0.5 s" in texts[4]
    assert texts[5] == "slept 0.01"
    assert r.format_errors == 1
    assert [o.tool_call_id for o in r.observations] == [c.id for c in action.tool_calls]
    r2 = await env.step(Message.assistant("", tool_calls=[_call("finish", answer="42")]))
    assert r2.terminated and r2.final_answer == "42" and r2.reward == 0.25


@pytest.mark.anyio
async def test_parallel_calls_run_concurrently():
    env = _env()
    await env.reset(Task(id="t", prompt="go"))
    t0 = time.perf_counter()
    r = await env.step(Message.assistant("", tool_calls=[_call("slow", seconds=0.2) for _ in range(5)]))
    assert time.perf_counter() - t0 < 0.6
    assert all(o.text == "slept 0.2" for o in r.observations)


@pytest.mark.anyio
async def test_infra_failure_of_a_tool_propagates():
    env = _env()
    await env.reset(Task(id="t", prompt="go"))
    with pytest.raises(InfraError, match="db went away"):
        await env.step(Message.assistant("", tool_calls=[_call("dead")]))


@pytest.mark.anyio
async def test_max_turns_truncates_and_text_reply_ends():
    env = _env(max_turns=2)
    await env.reset(Task(id="t", prompt="go"))
    r = await env.step(Message.assistant("", tool_calls=[_call("slow", seconds=0)]))
    assert not r.done
    r = await env.step(Message.assistant("", tool_calls=[_call("slow", seconds=0)]))
    assert r.truncated and not r.terminated
    env2 = _env()
    await env2.reset(Task(id="t", prompt="go"))
    r = await env2.step(Message.assistant("The answer is 7"))
    assert r.terminated and r.final_answer == "The answer is 7"


class Echo(UserSimulator):
    def __init__(self) -> None:
        self.turns = 0

    async def reset(self, task):
        return Message.user("hello agent")

    async def respond(self, messages):
        self.turns += 1
        return UserTurn(message=Message.user(f"reply {self.turns}"), done=self.turns >= 2,
                        state={"turns": self.turns})


@pytest.mark.anyio
async def test_simulated_user_hook():
    env = ToolEnv([slow], user=Echo())
    msgs = await env.reset(Task(id="t"))
    assert msgs[-1].text == "hello agent"
    r = await env.step(Message.assistant("hi"))
    assert not r.done and r.observations[0].text == "reply 1" and r.info["user_state"] == {"turns": 1}
    r = await env.step(Message.assistant("bye"))
    assert r.terminated


@pytest.mark.anyio
async def test_toolsets_are_set_up_per_episode_and_torn_down():
    events = []

    class Counter(Toolset):
        async def setup(self, ctx):
            self.n = 0
            events.append("setup")

        async def teardown(self, ctx):
            events.append("teardown")

        @tool
        def bump(self) -> str:
            """Bump."""
            self.n += 1
            return str(self.n)

    env = ToolEnv([Counter])
    for _ in range(2):
        await env.reset(Task(id="t", prompt="go"))
        r = await env.step(Message.assistant("", tool_calls=[_call("bump"), _call("bump")]))
        assert sorted(o.text for o in r.observations) == ["1", "2"]
    await env.aclose()
    assert events == ["setup", "teardown", "setup", "teardown"]


@pytest.mark.anyio
async def test_task_without_prompt_is_refused():
    with pytest.raises(ValueError, match="nothing to respond to"):
        await _env().reset(Task(id="t"))


def test_registry_make_and_tasks():
    env = traject.make("lookup", max_turns=3)
    assert env.spec.max_turns == 3 and {t.name for t in env.tools} == {"lookup", "submit"}
    a = traject.load_tasks("lookup", n=3, seed=1)
    assert a == traject.load_tasks("lookup", n=3, seed=1)
    assert {t.id for t in a}.isdisjoint({t.id for t in traject.load_tasks("lookup", split="train", n=3, seed=1)})
    with pytest.raises(KeyError, match="registered envs: .*lookup"):
        traject.make("nope")
    with pytest.raises(TypeError, match="does not accept this config"):
        traject.make("lookup", bogus=1)


@tool
def flood(n: int) -> str:
    """Return n characters."""
    return "x" * n


@pytest.mark.anyio
async def test_a_huge_tool_output_is_cut_with_a_marker():
    env = ToolEnv([flood], max_output_chars=1000)
    await env.reset(Task(id="t", prompt="go"))
    r = await env.step(Message.assistant("", tool_calls=[_call("flood", n=5_000_000), _call("flood", n=1000)]))
    big, small = (o.text for o in r.observations)
    assert big.startswith("x" * 1000) and big.endswith("[output cut: 4,999,000 of 5,000,000 characters not shown]")
    assert len(big) < 1100
    assert small == "x" * 1000  # at the cap: untouched
    assert r.tool_results[0].content == big
    assert ToolEnv([flood]).max_output_chars == 16_000  # on by default


def test_cap_content_keeps_images_and_cuts_text():
    from traject.environments.tool_env import cap_content
    from traject.types import ImagePart, TextPart

    img = ImagePart(data="AAAA", mime_type="image/png")
    out = cap_content([TextPart(text="a" * 8), img, TextPart(text="b" * 8)], 10)
    assert [type(p).__name__ for p in out] == ["TextPart", "ImagePart", "TextPart", "TextPart"]
    assert out[0].text == "a" * 8 and out[2].text == "bb" and "6 of 16 characters" in out[3].text
