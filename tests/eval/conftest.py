from __future__ import annotations

import base64
import io

import pytest

from traject.agents.scripted import ScriptedPolicy
from traject.eval.config import EvalConfig, PolicyConfig, Pricing, TaskSource
from traject.eval.runner import run_eval
from traject.environments.builtin.lookup import next_call
from traject.types import Message, ToolCall


def half_right(messages, tools):
    """The lookup oracle, except that it gets every task whose prompt has an odd length wrong."""
    prompt = next(m.text for m in messages if m.role == "user")
    name, args = next_call(prompt, [m.text for m in messages if m.role == "tool"], wrong=len(prompt) % 2 == 1)
    return Message.assistant("", tool_calls=[ToolCall(name=name, arguments=args)])


class TokenCounting(ScriptedPolicy):
    """A scripted policy that reports token counts, so that runs differ in cost."""

    def __init__(self, script, tokens: int) -> None:
        super().__init__(script)
        self.tokens = tokens

    async def act(self, messages, tools):
        out = await super().act(messages, tools)
        return out.model_copy(update={"prompt_tokens": self.tokens, "completion_tokens": self.tokens // 4})


@pytest.fixture
def helpers():
    """The helpers of this directory's tests (tests/ is not a package, so they travel as a fixture)."""
    from types import SimpleNamespace

    return SimpleNamespace(half_right=half_right, TokenCounting=TokenCounting, png=png)


@pytest.fixture
def make_run(tmp_path):
    """``await make_run(name, policy, n=..., samples=...)``: an eval run directory."""

    async def make(name, policy, n=6, samples=2, pricing=None):
        config = EvalConfig(env="lookup", tasks=TaskSource(n=n, seed=2), samples=samples, concurrency=4,
                            policy=PolicyConfig(kind="scripted", target="tests"), name=name,
                            pricing=Pricing(**pricing) if pricing else None)
        await run_eval(config, tmp_path / name, policy=policy)
        return tmp_path / name

    return make


def png(width: int, height: int, color=(255, 255, 255)) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()
