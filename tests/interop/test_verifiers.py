"""verifiers (0.4, verifiers.v1) environments as traject envs: tasksets, toolsets, rubrics and a
multi-turn Env written here with verifiers' own classes; in `traject eval` and in training."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from typer.testing import CliRunner

import traject
from traject.agents.loop import AgentLoop
from traject.agents.scripted import ScriptedPolicy
from traject.types import Message, Status, ToolCall

MODULES = {
    "vf_arith": '''
        from collections.abc import Iterator
        import re
        import verifiers.v1 as vf
        from traject.types import Message, ToolCall

        class CalcState(vf.State):
            calls: int = 0

        class Calculator(vf.Toolset[vf.ToolsetConfig, CalcState]):
            TOOL_PREFIX = None

            @vf.tool
            async def add(self, a: int, b: int) -> int:
                """Add two integers."""
                self.state.calls += 1
                return a + b

            @vf.tool
            async def calls(self) -> int:
                """How many additions this episode made."""
                return self.state.calls

        class ArithData(vf.TaskData):
            answer: int

        class ArithTask(vf.Task[ArithData, vf.State, vf.TaskConfig]):
            @classmethod
            def toolsets(cls, config):
                return [Calculator(vf.ToolsetConfig())]

            @vf.reward
            async def correct(self, task, trace) -> float:
                return float(trace.last_reply.strip() == str(task.answer))

            @vf.reward(weight=0.5)
            async def used_tool(self, trace) -> float:
                return float(any(m.role == "tool" for m in trace.messages))

        class ArithTaskset(vf.Taskset[ArithTask, vf.TasksetConfig]):
            def load(self) -> Iterator[ArithTask]:
                for i, (a, b) in enumerate([(2, 3), (10, 7), (4, 4)]):
                    yield ArithTask(ArithData(id=f"add-{i}", prompt=f"What is {a} + {b}? Reply with the number.",
                                              system_prompt="Use the add tool.", answer=a + b), self.config.task)

        def solve(messages, tools):
            """A scripted solver for `traject eval`: add with the tool, then say the sum."""
            if messages[-1].role == "tool":
                return Message.assistant(messages[-1].text)
            a, b = map(int, re.findall(r"\\d+", messages[-1].text)[:2])
            return Message.assistant(tool_calls=[ToolCall(name="add", arguments={"a": a, "b": b})])

        __all__ = ["ArithTaskset"]
    ''',
    "vf_guess": '''
        from collections.abc import Iterator
        import verifiers.v1 as vf

        class GuessData(vf.TaskData):
            secret: int

        class GuessTask(vf.Task[GuessData, vf.State, vf.TaskConfig]):
            @vf.reward(weight=0.1)
            async def brevity(self, trace) -> float:
                return 1.0 / max(1, len(trace.assistant_messages))

        class GuessEnvConfig(vf.EnvConfig):
            player: vf.AgentConfig = vf.AgentConfig()

        class GuessEnv(vf.Env[GuessEnvConfig]):
            """The env drives: each reply is a guess, the env answers higher/lower."""

            async def run(self, task, agents):
                solved = 0.0
                async with agents.player.interaction(task) as interaction:
                    segment = await interaction.turn()
                    for _ in range(4):
                        guess = int(segment.last_reply or -1)
                        if guess == task.data.secret:
                            solved = 1.0
                            break
                        hint = "higher" if guess < task.data.secret else "lower"
                        segment = await interaction.turn(f"{hint}, guess again")
                interaction.trace.record_reward("solved", solved, 1.0)

        class GuessTaskset(vf.Taskset[GuessTask, vf.TasksetConfig]):
            def load(self) -> Iterator[GuessTask]:
                for i, secret in enumerate([3, 7]):
                    yield GuessTask(GuessData(id=f"guess-{i}", prompt="Guess my number (0-9).", secret=secret),
                                    self.config.task)

        __all__ = ["GuessTaskset", "GuessEnv"]
    ''',
    "vf_broken": '''
        from collections.abc import Iterator
        import verifiers.v1 as vf

        class BrokenTask(vf.Task[vf.TaskData, vf.State, vf.TaskConfig]):
            @vf.reward
            async def exact(self, trace) -> float:
                raise RuntimeError("rubric crashed")

        class BrokenTaskset(vf.Taskset[BrokenTask, vf.TasksetConfig]):
            def load(self) -> Iterator[BrokenTask]:
                yield BrokenTask(vf.TaskData(id="b0", prompt="hi"), self.config.task)

        __all__ = ["BrokenTaskset"]
    ''',
    "vf_box": '''
        from collections.abc import Iterator
        import verifiers.v1 as vf

        class BoxTask(vf.Task[vf.TaskData, vf.State, vf.TaskConfig]):
            @vf.reward
            async def file_written(self, runtime) -> float:
                return 1.0

        class BoxTaskset(vf.Taskset[BoxTask, vf.TasksetConfig]):
            def load(self) -> Iterator[BoxTask]:
                yield BoxTask(vf.TaskData(id="x0", prompt="hi"), self.config.task)

        __all__ = ["BoxTaskset"]
    ''',
    "vf_digits": '''
        from collections.abc import Iterator
        import verifiers.v1 as vf

        class DigitTask(vf.Task[vf.TaskData, vf.State, vf.TaskConfig]):
            @vf.reward
            async def digit_share(self, trace) -> float:
                text = trace.last_reply
                return sum(c.isdigit() for c in text) / max(len(text), 1)

        class DigitTaskset(vf.Taskset[DigitTask, vf.TasksetConfig]):
            def load(self) -> Iterator[DigitTask]:
                for i in range(16):
                    yield DigitTask(vf.TaskData(id=f"d{i}", prompt=f"Say a number, please ({i})."), self.config.task)

        __all__ = ["DigitTaskset"]
    ''',
    "vf_stop": '''
        from collections.abc import Iterator
        import verifiers.v1 as vf

        class Echo(vf.Toolset):
            TOOL_PREFIX = None

            @vf.tool
            async def echo(self, text: str) -> str:
                """Echo the text."""
                return text

        class StopTask(vf.Task[vf.TaskData, vf.State, vf.TaskConfig]):
            @classmethod
            def toolsets(cls, config):
                return [Echo(vf.ToolsetConfig())]

            @vf.stop
            async def two_tool_results(self, trace: vf.Trace) -> bool:
                return len(trace.tool_messages) >= 2

            @vf.reward
            async def tools_used(self, trace) -> float:
                return float(len(trace.tool_messages))

        class StopTaskset(vf.Taskset[StopTask, vf.TasksetConfig]):
            def load(self) -> Iterator[StopTask]:
                yield StopTask(vf.TaskData(id="s0", prompt="Echo things."), self.config.task)

        __all__ = ["StopTaskset"]
    ''',
    "vf_chat": '''
        from collections.abc import Iterator
        import verifiers.v1 as vf

        class ChatTaskset(vf.Taskset[vf.Task, vf.TasksetConfig]):
            def load(self) -> Iterator[vf.Task]:
                yield vf.Task(vf.TaskData(id="c0", prompt="Help me book a table."), self.config.task)

        __all__ = ["ChatTaskset"]
    ''',
}


@pytest.fixture(scope="module", autouse=True)
def taskset_modules(tmp_path_factory):
    root = tmp_path_factory.mktemp("vf_modules")
    for name, source in MODULES.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))


def call(name: str, **arguments) -> Message:
    return Message.assistant(tool_calls=[ToolCall(name=name, arguments=arguments)])


@pytest.mark.anyio
async def test_taskset_tools_and_rubric() -> None:
    tasks = traject.load_tasks("verifiers:vf_arith")
    assert [t.id for t in tasks] == ["add-0", "add-1", "add-2"]
    assert [m.role for m in tasks[0].initial_messages()] == ["system", "user"]
    env = traject.make("verifiers:vf_arith")
    assert [t.name for t in env.tools] == ["add", "calls"]  # known before reset (trainers render them)
    assert env.tools[0].parameters["required"] == ["a", "b"]
    policy = ScriptedPolicy([call("add", a=2, b=3), call("calls"), Message.assistant("5")])
    traj = await AgentLoop(policy).run(env, tasks[0])
    assert traj.status is Status.COMPLETED
    assert [m.text for m in traj.messages if m.role == "tool"] == ["5", "1"]  # State lives for the episode
    assert traj.reward.total == 1.5 and traj.reward.components == {"correct": 1.0, "used_tool": 0.5}
    # A fresh episode has fresh tool state; a wrong answer without tools scores 0 (not failed).
    traj = await AgentLoop(ScriptedPolicy([call("calls"), Message.assistant("99")])).run(env, tasks[1])
    assert traj.messages[3].text == "0"
    assert traj.reward.components == {"correct": 0.0, "used_tool": 0.5} and not traj.reward.failed
    # A bad tool call is an observation the model reads.
    traj = await AgentLoop(ScriptedPolicy([call("add", a="x"), Message.assistant("8")])).run(env, tasks[2])
    assert traj.steps[0].tool_results[0].is_error and traj.reward.components["correct"] == 1.0


@pytest.mark.anyio
async def test_a_multi_turn_env_drives_the_episode() -> None:
    tasks = traject.load_tasks("verifiers:vf_guess")
    env = traject.make("verifiers:vf_guess")
    guesses = iter(["5", "2", "3"])
    traj = await AgentLoop(ScriptedPolicy(lambda m, t: Message.assistant(next(guesses)))).run(env, tasks[0])
    assert traj.status is Status.COMPLETED
    assert [m.text for m in traj.messages if m.role == "user"][1:] == ["lower, guess again", "higher, guess again"]
    assert traj.reward.components["solved"] == 1.0
    assert traj.reward.total == pytest.approx(1.0 + 0.1 / 3)
    # The env gives up after 4 wrong guesses: the episode ends there, unsolved.
    traj = await AgentLoop(ScriptedPolicy(lambda m, t: Message.assistant("0"))).run(env, tasks[1])
    assert traj.num_turns == 5 and traj.reward.components["solved"] == 0.0
    # traject's turn budget ends it first: run() still finishes and records its reward.
    short = traject.make("verifiers:vf_guess", max_turns=2)
    traj = await AgentLoop(ScriptedPolicy(lambda m, t: Message.assistant("0"))).run(short, tasks[1])
    assert traj.status is Status.MAX_TURNS and traj.num_turns == 2
    assert traj.reward.components["solved"] == 0.0 and not traj.reward.failed


@pytest.mark.anyio
async def test_a_trace_stop_hook_ends_the_episode() -> None:
    env = traject.make("verifiers:vf_stop")
    task = traject.load_tasks("verifiers:vf_stop")[0]
    echo = Message.assistant(tool_calls=[ToolCall(name="echo", arguments={"text": "a"})])
    traj = await AgentLoop(ScriptedPolicy([echo, echo, echo, Message.assistant("done")])).run(env, task)
    assert traj.num_turns == 2 and traj.status is Status.COMPLETED
    assert traj.steps[-1].info["verifiers"]["stop"] == "two_tool_results"
    assert traj.reward.components == {"tools_used": 2.0}


@pytest.mark.anyio
async def test_a_rubric_that_raises_is_a_failed_reward_not_zero() -> None:
    env = traject.make("verifiers:vf_broken")
    task = traject.load_tasks("verifiers:vf_broken")[0]
    traj = await AgentLoop(ScriptedPolicy([Message.assistant("hello")])).run(env, task)
    assert traj.reward.failed and "rubric crashed" in traj.reward.error
    assert not traj.trainable


@pytest.mark.anyio
async def test_a_reward_that_needs_a_verifiers_runtime_is_failed_not_skipped() -> None:
    task = traject.load_tasks("verifiers:vf_box")[0]
    traj = await AgentLoop(ScriptedPolicy([Message.assistant("hello")])).run(traject.make("verifiers:vf_box"), task)
    assert traj.reward.failed and "file_written need a verifiers runtime" in traj.reward.error
    # A task that defines no reward at all scores nothing: failed, not 0.
    task = traject.load_tasks("verifiers:vf_chat")[0]
    traj = await AgentLoop(ScriptedPolicy([Message.assistant("hello")])).run(traject.make("verifiers:vf_chat"), task)
    assert traj.reward.failed and "no reward" in traj.reward.error


def test_unsupported_verifiers_envs_are_named() -> None:
    with pytest.raises(ValueError, match=r"UserSimEnv has 2 agent seats \(assistant, user\).*not supported"):
        traject.make("verifiers:vf_chat", env_id="user_sim")
    with pytest.raises(ValueError, match="verifiers:vf_nosuch: taskset 'vf_nosuch' not found"):
        traject.make("verifiers:vf_nosuch")


def test_runs_in_traject_eval(tmp_path) -> None:
    from traject.cli import app

    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["eval", "--env", "verifiers:vf_arith", "--policy", "scripted:vf_arith:solve",
                                      "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    assert all(r["reward"]["components"] == {"correct": 1.0, "used_tool": 0.5} for r in rows)


def test_trains_with_the_local_learner(tmp_path) -> None:
    from traject.agents.hf import build_tiny_model
    from traject.trainers.config import config_from_dict
    from traject.trainers.local import LocalTrainer

    model = build_tiny_model(tmp_path / "tiny", hidden_size=32, intermediate_size=64, num_layers=1,
                             corpus_tasks=10, vocab_size=256)
    cfg = config_from_dict({
        "model": {"path": str(model)},
        "env": {"name": "verifiers:vf_digits", "config": {"max_turns": 1}, "tasks": {"n": 8}},
        "rollout": {"group_size": 4, "tasks_per_step": 2, "max_new_tokens": 4, "concurrency": 8},
        "algorithm": {"advantage": "grpo"},
        "eval": {"tasks": {"n": 2}},
        "trainer": {"steps": 2, "seed": 0, "out_dir": str(tmp_path / "train")},
    })
    LocalTrainer(cfg).run()
    records = [json.loads(line) for line in (tmp_path / "train" / "metrics.jsonl").read_text().splitlines()]
    assert sum("reward/mean" in r for r in records) == 2
    rows = [json.loads(line) for line in (tmp_path / "train" / "trajectories.jsonl").read_text().splitlines()]
    assert len(rows) == 2 + 2 * 8 + 2  # held-out eval before and after, and 2 steps of 2 tasks x 4 samples
    assert all(not r["reward"]["failed"] and set(r["reward"]["components"]) == {"digit_share"} for r in rows)
    assert all(r["token_views"] for r in rows)



@pytest.mark.anyio
async def test_export_a_traject_env_as_a_verifiers_taskset() -> None:
    import verifiers.v1 as vf
    from verifiers.v1.utils import loaders

    from traject.interop.verifiers_env import new_trace

    config = loaders.taskset_config_type("traject-verifiers").model_validate(
        {"id": "traject-verifiers", "env": "lookup", "tasks": {"n": 2, "seed": 5}})
    taskset = vf.load_taskset(config)
    vf_tasks = list(taskset)
    originals = traject.load_tasks("lookup", n=2, seed=5)
    assert [t.data.id for t in vf_tasks] == [t.id for t in originals]
    task, original = vf_tasks[0], originals[0]
    total = sum(original.data["prices"][item] * qty for item, qty in original.data["order"])
    for reply, expected in ((str(total), 1.0), (str(total + 1), 0.0)):
        trace = new_trace(task, [*original.initial_messages(), Message.assistant(reply)])
        await task.score(trace)
        assert trace.rewards["traject_reward"].score == expected
