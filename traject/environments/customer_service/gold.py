"""Gold replay: a task's reference actions run through the env, with no model on either side.

``traject eval --env customer_service --policy gold --env-config user=gold`` replays every
task's ``evaluation_criteria.actions`` in order, the way tau2's evaluator builds its gold
database, but through the real env: tool calls, observations, the recorded hashes and the reward.

* :class:`GoldPolicy` makes the agent's gold calls, one per turn. Before a block of the user's
  own gold actions (tau2's dual control) it hands the turn to the user with a short message; at
  the end it says the task's ``communicate_info`` and stops.
* :class:`GoldUser` is the customer without a model: it opens with the scenario's reason for
  contact, runs its gold actions on the episode's databases when handed the turn (errors
  swallowed, as tau2 does) and ends once nothing is left.

The policy finds its task through the running episode (``current_episode().task_id``, set by
``Rollouts`` and so by ``traject eval``) among the domains loaded in this process.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import JsonValue

from traject.agents.policy import PolicyOutput
from traject.environments.customer_service.state import DomainState
from traject.environments.customer_service.tau2_format import Action, Tau2Task
from traject.environments.users.base import UserSimulator, UserTurn
from traject.types import Message, Task, ToolCall, ToolSchema

HANDOVER = "Please go ahead with the steps on your side."


def _plan(actions: list[Action], messages: list[Message]) -> tuple[int, list[int], int]:
    """(agent calls made so far, indices of the user's actions due before the next agent call,
    index of the next agent call or len(actions))."""
    made = sum(len(m.tool_calls) for m in messages if m.role == "assistant")
    agent = [i for i, a in enumerate(actions) if a.requestor == "assistant"]
    last = agent[made - 1] if 0 < made <= len(agent) else -1
    nxt = agent[made] if made < len(agent) else len(actions)
    due = [i for i in range(last + 1, nxt) if actions[i].requestor == "user"]
    return made, due, nxt


def _this_episode(messages: list[Message], task: Tau2Task) -> list[Message]:
    """The messages after the system prompt and the task's message history (whose tool calls
    were made before the episode, not by the replay)."""
    from traject.environments.customer_service.tasks import history_messages

    start = 1 if messages and messages[0].role == "system" else 0
    return messages[start + len(history_messages(task)):]


def _handed_over(messages: list[Message]) -> bool:
    """Whether, since the agent's last tool call, the agent has written to the user and the user
    has answered."""
    handed = False
    for m in reversed(messages):
        if m.role == "assistant":
            if m.tool_calls:
                return False
            if handed:
                return True
        elif m.role == "user":
            handed = True
    return False


def find_task(task_id: str) -> Tau2Task:
    """The tau2 task behind a traject task id (``<domain>/<tau2 id>``), among loaded domains."""
    from traject.environments.customer_service.domain import cached_domain, loaded_domains
    from traject.environments.customer_service.tasks import BUILTIN_DOMAIN

    name, _, tau2_id = task_id.partition("/")
    domains = [d for d in loaded_domains() if d.name == name]
    if not domains and name == BUILTIN_DOMAIN.name:
        domains = [cached_domain(BUILTIN_DOMAIN)]
    for domain in domains:
        try:
            return domain.task(tau2_id)
        except KeyError:
            continue
    raise ValueError(f"the gold policy found no customer-service task {task_id!r} among the domains loaded in "
                     "this process (load the tasks with traject.load_tasks('customer_service', path=...) first)")


class GoldPolicy:
    """The agent side of a gold replay (see the module docstring)."""

    async def act(self, messages: list[Message], tools: list[ToolSchema]) -> PolicyOutput:
        from traject.episode import current_episode

        episode = current_episode()
        if episode is None:
            raise ValueError("the gold policy replays the running episode's task: run it through traject eval "
                             "or Rollouts, which say which task is running")
        task = find_task(episode.task_id)
        actions = task.criteria.actions or []
        messages = _this_episode(messages, task)
        made, due, nxt = _plan(actions, messages)
        if due and not _handed_over(messages):
            return PolicyOutput(message=Message.assistant(HANDOVER))
        if nxt < len(actions):
            action = actions[nxt]
            call = ToolCall(id=f"gold_{made}", name=action.name, arguments=json.loads(json.dumps(action.arguments)))
            return PolicyOutput(message=Message.assistant(tool_calls=[call]))
        said = " ".join(task.criteria.communicate_info or [])
        return PolicyOutput(message=Message.assistant(f"Done. {said}".strip()))


def opening_text(task: Tau2Task) -> str:
    instructions = task.user_scenario.get("instructions")
    if isinstance(instructions, dict):
        for key in ("reason_for_call", "task_instructions"):
            if isinstance(instructions.get(key), str) and instructions[key].strip():
                return instructions[key].strip()
    if isinstance(instructions, str) and instructions.strip():
        return instructions.strip()
    return task.ticket or "Hello, I need help."


class GoldUser(UserSimulator):
    """The customer side of a gold replay (see the module docstring). The env binds it to the
    episode's databases at set-up."""

    def __init__(self) -> None:
        self.domain_state: DomainState | None = None
        self.task: Tau2Task | None = None
        self.ran: list[int] = []
        self.errors: list[str | None] = []
        self.ended = False

    def bind(self, state: DomainState, task: Tau2Task) -> None:
        self.domain_state, self.task = state, task
        self.ran, self.errors, self.ended = [], [], False

    async def reset(self, task: Task) -> Message | None:
        if self.task is None:
            raise RuntimeError("GoldUser.reset() before the env bound it to the episode's domain state")
        history = self.task.initial_state.message_history if self.task.initial_state else None
        return None if history else Message.user(opening_text(self.task))

    async def respond(self, messages: list[Message]) -> UserTurn:
        assert self.task is not None and self.domain_state is not None
        actions = self.task.criteria.actions or []
        _, _, nxt = _plan(actions, _this_episode(messages, self.task))
        due = [i for i in range(nxt) if actions[i].requestor == "user" and i not in self.ran]
        if due:
            self.errors += self.domain_state.replay([actions[i] for i in due])
            self.ran += due
            names = ", ".join(actions[i].name for i in due)
            return UserTurn(message=Message.user(f"Done on my side ({names})."), state=self.state)
        self.ended = True
        return UserTurn(message=Message.user("Thanks, that's all."), done=True, state=self.state)

    @property
    def state(self) -> dict[str, JsonValue]:
        out: dict[str, Any] = {"gold_user_actions_run": len(self.ran),
                               "gold_user_action_errors": [e for e in self.errors if e is not None]}
        if self.ended:
            out["done_reason"] = "gold_replay_finished"
        return out
