"""A traject env's tasks and reward as a verifiers (0.4) taskset: the export that goes the
other way from ``verifiers:MODULE``.

verifiers finds tasksets by top-level module name: the ``traject_verifiers`` package exports
this one. ``load_taskset(TrajectTasksetConfig(id="traject-verifiers", env="lookup", tasks={"n":
50}))`` (or ``--env.taskset.id traject-verifiers --env.taskset.env lookup`` on verifiers'
command line) yields the env's tasks; their reward is the env's traject Reward, computed on the
verifiers Trace's messages (its last reply is the final answer). What does not cross: the
env's tools (they need traject's sandboxes and episode context; verifiers harnesses bring
their own tools) and step records an env writes while it runs (so rewards that read tool
results or sandbox state score only the conversation).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import verifiers.v1 as vf

from traject.types import Message, Task, ToolCall, Trajectory


class TrajectTasksetConfig(vf.TasksetConfig):
    env: str = "lookup"
    """The traject env whose tasks and reward are exported."""
    tasks: dict[str, Any] = {"split": "test", "n": 50}
    """Options of the env's task source."""
    env_config: dict[str, Any] = {}
    """Arguments of the env's factory (for its reward)."""


class TrajectTaskData(vf.TaskData):
    env: str
    env_config: dict[str, Any] = {}
    task: dict[str, Any]
    """The traject Task, as JSON."""


def _message(m: Any) -> Message:
    text = m.content if isinstance(m.content, str) or m.content is None else vf.types.content_text(m.content)
    if m.role == "assistant":
        calls = [ToolCall(id=c.id, name=c.name, arguments=json.loads(c.arguments or "{}")) for c in m.tool_calls or []]
        return Message.assistant(text or "", tool_calls=calls, reasoning=m.reasoning_content)
    if m.role == "tool":
        return Message.tool(text or "", tool_call_id=m.tool_call_id, name=m.name or "")
    return Message(role=m.role, content=text or "")


class TrajectTask(vf.Task[TrajectTaskData, vf.State, vf.TaskConfig]):
    @property
    def key(self) -> str:
        return f"{self.data.env}/{self.data.task['id']}"

    @vf.reward
    async def traject_reward(self, task: TrajectTaskData, trace: Any) -> float:
        import traject

        env = traject.make(task.env, **task.env_config)
        if env.reward is None:
            raise ValueError(f"traject env {task.env!r} has no reward to export")
        traj = Trajectory(task_id=task.task["id"], env=task.env, messages=[_message(m) for m in trace.messages],
                          final_answer=trace.last_reply)
        result = await env.reward.score(traj, Task.model_validate(task.task))
        if result.failed:
            raise RuntimeError(f"traject reward failed: {result.error}")
        return result.total


class TrajectTaskset(vf.Taskset[TrajectTask, TrajectTasksetConfig]):
    def load(self) -> Iterator[TrajectTask]:
        import traject

        for task in traject.load_tasks(self.config.env, **self.config.tasks):
            messages = task.initial_messages()
            system = next((m.text for m in messages if m.role == "system"), None)
            prompt = [vf.UserMessage(content=m.text) if m.role == "user" else vf.AssistantMessage(content=m.text)
                      for m in messages if m.role != "system"]
            yield TrajectTask(TrajectTaskData(id=task.id, prompt=prompt, system_prompt=system, env=self.config.env,
                                              env_config=self.config.env_config, task=task.model_dump(mode="json")),
                              self.config.task)


__all__ = ["TrajectTaskset"]
