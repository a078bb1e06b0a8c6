"""tau2 tasks as traject Tasks, and the gold database each one should end in."""

from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path

from traject.environments.customer_service.domain import Domain, DomainError, cached_domain
from traject.environments.customer_service.state import DomainState
from traject.environments.customer_service.tau2_format import Tau2Task
from traject.types import Message, Task, ToolCall

log = logging.getLogger(__name__)

BUILTIN_DOMAIN = Path(__file__).parent / "domains" / "shop"


def history_messages(task: Tau2Task) -> list[Message]:
    """A task's ``initial_state.message_history`` as traject messages (the conversation so far)."""
    history = task.initial_state.message_history if task.initial_state else None
    out: list[Message] = []
    for m in history or []:
        if m.role == "tool":
            out.append(Message.tool(m.content or "", tool_call_id=m.id or "", name=""))
        elif m.role == "assistant":
            calls = [ToolCall(id=c.id or f"call_{i}", name=c.name, arguments=c.arguments)
                     for i, c in enumerate(m.tool_calls or [])]
            out.append(Message.assistant(m.content or "", tool_calls=calls))
        elif m.role == "user" and not m.tool_calls:
            out.append(Message.user(m.content or ""))
        elif m.role == "system":
            out.append(Message.system(m.content or ""))
    # Tool messages name their tool: take it from the call they answer.
    names = {c.id: c.name for m in out for c in m.tool_calls}
    return [m.model_copy(update={"name": names.get(m.tool_call_id or "", "")}) if m.role == "tool" else m
            for m in out]


def to_task(domain: Domain, task: Tau2Task, *, tools: str | None = None) -> Task:
    criteria = task.criteria
    return Task(
        id=f"{domain.name}/{task.id}",
        prompt=history_messages(task),
        data={
            "domain": domain.name,
            "domain_path": str(domain.root) if domain.root else "",
            "tools": tools or domain.tools_ref,
            "tau2_task_id": task.id,
            "user_scenario": task.user_scenario,
            "user_tools": task.user_tools,
            "reward_basis": list(criteria.reward_basis),
            "communicate_info": criteria.communicate_info or [],
            "nl_assertions": criteria.nl_assertions or [],
            "gold_actions": [a.model_dump(mode="json") for a in criteria.actions or []],
            "checklist": criteria.checklist or [],
        },
        metadata={"source": "tau2", "domain": domain.name},
    )


def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=3)
    log.warning(message)


def domain_tasks(domain: Domain, split: str | None = None, n: int | None = None) -> list[Task]:
    """The domain's tasks: every one when ``split`` is None or ``"all"``, else the ids that
    ``split_tasks.json`` lists for it. A split asked of a domain without splits loads every task,
    with a warning (train and test would be the same tasks)."""
    tasks = domain.tasks
    if split is None or split == "all":
        base = domain.splits.get("base")
        if split is None and base is not None and len(set(base)) != len(tasks):
            _warn(f"domain {domain.name!r}: no split given, so all {len(tasks)} tasks of tasks.json load; tau2's "
                  f"default split 'base' has {len(set(base))} (pass split='base' for tau2's set)")
    elif domain.splits:
        if split not in domain.splits:
            raise DomainError(f"domain {domain.name!r} has no split {split!r}; its splits: {sorted(domain.splits)}")
        wanted = set(domain.splits[split])
        tasks = [t for t in tasks if t.id in wanted]
    else:
        _warn(f"domain {domain.name!r} has no split_tasks.json: split {split!r} loads all {len(tasks)} tasks "
              "(every split is the same tasks)")
    out = [to_task(domain, t) for t in tasks]
    return out if n is None else out[:n]


def customer_service_tasks(split: str | None = None, n: int | None = None, seed: int = 0,
                           path: str | Path | None = None, tools: str | None = None, **_: object) -> list[Task]:
    """The built-in shop domain's tasks, or a tau2 domain folder's (``path``); without ``split``
    every task of the domain."""
    domain = cached_domain(path or BUILTIN_DOMAIN, tools)
    return domain_tasks(domain, split, n)


def task_domain(task: Task, default: Domain | None = None) -> tuple[Domain, Tau2Task]:
    """The domain a traject task belongs to (its ``domain_path``) and its tau2 task."""
    path = task.data.get("domain_path")
    domain = default
    if isinstance(path, str) and path and (domain is None or domain.root is None or str(domain.root) != path):
        tools = task.data.get("tools")
        domain = cached_domain(path, tools if isinstance(tools, str) else None)
    if domain is None:
        domain = cached_domain(BUILTIN_DOMAIN)
    task_id = task.data.get("tau2_task_id")
    if not isinstance(task_id, str):
        raise ValueError(f"task {task.id!r} is not a customer-service task: it has no data['tau2_task_id'] "
                         "(load tasks with traject.load_tasks('customer_service', path=...))")
    return domain, domain.task(task_id)


def replay_gold_state(task: Task) -> object:
    """The databases after the task's gold actions, as JSON (``DBStateMatch``'s ``replay_gold``)."""
    domain, t2 = task_domain(task)
    return gold_state(domain, t2).snapshot()


_gold: dict[tuple[object, ...], dict[str, str]] = {}
_gold_lock = threading.Lock()


def gold_state(domain: Domain, task: Tau2Task) -> DomainState:
    state = DomainState(domain)
    state.apply_initial_state(task.initial_state)
    state.replay(task.criteria.actions or [])
    return state


def gold_hashes(domain: Domain, task: Tau2Task) -> dict[str, str]:
    """The hashes of the state after replaying the task's gold actions on a fresh copy
    (memoised): ``gold_state_hash`` (traject's: the rewards library's ``state_hash`` of the
    snapshot) and ``tau2_gold_db_hash`` (tau2's own, plus ``tau2_gold_user_db_hash`` where the
    user has a database of its own)."""
    key = (str(domain.root), domain.name, domain.tools_ref, task.id) if domain.root else (id(domain), task.id)
    with _gold_lock:
        if key in _gold:
            return _gold[key]
    from traject.rewards.verifiers.db_state import state_hash

    state = gold_state(domain, task)
    agent, user = state.hashes()
    value = {"gold_state_hash": state_hash(state.snapshot()), "tau2_gold_db_hash": agent}
    if user is not None:
        value["tau2_gold_user_db_hash"] = user
    with _gold_lock:
        _gold[key] = value
    return value


def gold_hash(domain: Domain, task: Tau2Task) -> str:
    """traject's state hash of the gold state (see :func:`gold_hashes`)."""
    return gold_hashes(domain, task)["gold_state_hash"]
