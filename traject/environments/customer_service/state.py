"""One episode's copy of a domain: its databases and the toolkits bound to them.

It follows tau2's ``Environment.set_state`` and its evaluator: a task's initial state is
applied (initialization data merged into the databases, initialization actions run, mutating
tool calls of the message history replayed); gold actions are replayed with their errors
swallowed; the databases are compared by hash.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from pydantic import BaseModel

from traject.environments.customer_service.domain import Domain
from traject.environments.customer_service.tau2_format import Action, EnvAssertion, EnvFunctionCall, InitialState
from traject.environments.customer_service.toolkit import db_hash, mutates_state, toolkit_methods, toolkit_tools
from traject.tools.base import Tool

log = logging.getLogger(__name__)


def deep_update(base: Any, update: Any) -> Any:
    """Nested dicts merged key by key (tau2 merges initialization data with addict's update)."""
    if isinstance(base, dict) and isinstance(update, dict):
        out = dict(base)
        for k, v in update.items():
            out[k] = deep_update(base.get(k), v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(update)


def _build_db(model: type[BaseModel] | None, data: Any) -> Any:
    return model.model_validate(copy.deepcopy(data)) if model is not None else copy.deepcopy(data)


class DomainState:
    """``writes`` counts the calls that may have changed a database (write tools, set-up
    functions, replays): hashes of the state are recomputed only when it moved."""

    def __init__(self, domain: Domain) -> None:
        self.domain = domain
        self.writes = 0
        self.db = _build_db(domain.db_model, domain.db)
        self.toolkit = domain.toolkit_cls(self.db)
        self.user_toolkit: Any = None
        if domain.user_toolkit_cls is not None:
            user_db = (_build_db(domain.user_db_model, domain.user_db) if domain.user_db is not None else self.db)
            self.user_toolkit = domain.user_toolkit_cls(user_db)

    # --- databases ---------------------------------------------------------------------------

    def agent_db(self) -> Any:
        return self.toolkit.db

    def user_db(self) -> Any:
        return None if self.user_toolkit is None else self.user_toolkit.db

    def wrote(self) -> None:
        self.writes += 1

    def hashes(self) -> tuple[str, str | None]:
        """tau2's own hashes, as its evaluator compares them: (agent database, user database or
        None when the user has none of its own)."""
        user = self.user_db()
        return db_hash(self.agent_db()), (db_hash(user) if user is not None and user is not self.agent_db() else None)

    def state_hash(self) -> str:
        agent, user = self.hashes()
        return agent if user is None else f"{agent}:{user}"

    def snapshot(self) -> Any:
        """The databases as JSON: the agent's, and the user's where it has its own. Plain-JSON
        databases are returned as they are (not copied): read it, do not keep it."""
        agent, user = self.agent_db(), self.user_db()
        agent_json = _as_json(agent)
        if user is None or user is agent:
            return agent_json
        return {"db": agent_json, "user_db": _as_json(user)}

    # --- tools -------------------------------------------------------------------------------

    def agent_tools(self) -> list[Tool]:
        return toolkit_tools(self.toolkit, requestor="assistant", on_write=self.wrote)

    def user_tools(self, include: list[str] | None = None) -> list[Tool]:
        if self.user_toolkit is None:
            return []
        return toolkit_tools(self.user_toolkit, requestor="user", include=include, on_write=self.wrote)

    def _toolkit(self, requestor: str) -> Any:
        if requestor == "user":
            if self.user_toolkit is None:
                raise ValueError(f"domain {self.domain.name!r} has no user tools")
            return self.user_toolkit
        return self.toolkit

    def call(self, name: str, arguments: dict[str, Any], requestor: str = "assistant") -> Any:
        methods = toolkit_methods(self._toolkit(requestor))
        if name not in methods:
            raise ValueError(f"tool {name!r} not found")
        if mutates_state(methods[name]):
            self.wrote()
        return methods[name](**arguments)

    def _replace_db(self, requestor: str, new_db: Any) -> None:
        kit = self._toolkit(requestor)
        old = kit.db
        kit.db = new_db
        self.wrote()
        # Toolkits that shared the old database keep sharing it (tau2 re-points them the same way).
        for other in (self.toolkit, self.user_toolkit):
            if other is not None and other is not kit and other.db is old:
                other.db = new_db
        if requestor == "assistant":
            self.db = new_db

    # --- task state --------------------------------------------------------------------------

    def apply_initial_state(self, initial: InitialState | None) -> None:
        if initial is None:
            return
        data = initial.initialization_data
        if data is not None and data.agent_data is not None:
            merged = deep_update(_as_data(self.agent_db()), data.agent_data)
            self._replace_db("assistant", _build_db(self.domain.db_model, merged))
        if data is not None and data.user_data is not None:
            merged = deep_update(_as_data(self.user_db()), data.user_data)
            self._replace_db("user", _build_db(self.domain.user_db_model or self.domain.db_model, merged))
        for call in initial.initialization_actions or []:
            self.run_function(call)
        for message in initial.message_history or []:
            for tc in message.tool_calls or []:
                requestor = tc.requestor or ("user" if message.role == "user" else "assistant")
                kit = self._toolkit(requestor)
                method = toolkit_methods(kit).get(tc.name)
                if method is None or not mutates_state(method):
                    continue
                self.wrote()
                try:
                    method(**tc.arguments)
                except Exception as exc:  # noqa: BLE001 - the history's failed calls changed nothing
                    log.debug("history call %s failed on replay: %s", tc.name, exc)

    def run_function(self, call: EnvFunctionCall, *, writes: bool = True) -> Any:
        """Any function of a toolkit (assertions, set-up helpers), as tau2's ``run_env_function_call``.
        ``writes=False`` for a function known to only read (an assertion)."""
        kit = self._toolkit(call.env_type)
        func = getattr(kit, call.func_name, None)
        if func is None or not callable(func):
            raise ValueError(f"function {call.func_name!r} not found in the {call.env_type} tools of "
                             f"domain {self.domain.name!r}")
        if writes:
            self.wrote()  # set-up helpers are not marked: count every one as a write
        return func(**call.arguments)

    def check_assertion(self, assertion: EnvAssertion) -> bool:
        try:
            value = self.run_function(assertion, writes=False)
        except Exception as exc:  # noqa: BLE001 - an assertion that cannot run is not met
            log.debug("assertion %s failed to run: %s", assertion.func_name, exc)
            return False
        return bool(value) == assertion.assert_value if isinstance(value, bool) else False

    def replay(self, actions: list[Action]) -> list[str | None]:
        """Run actions in order; an action that raises is skipped, as tau2's evaluator does.
        Returns each action's error (None when it ran)."""
        errors: list[str | None] = []
        for action in actions:
            try:
                self.call(action.name, dict(action.arguments), action.requestor)
                errors.append(None)
            except Exception as exc:  # noqa: BLE001
                errors.append(f"{type(exc).__name__}: {exc}")
        return errors


def _as_json(db: Any) -> Any:
    return db.model_dump(mode="json") if isinstance(db, BaseModel) else db


def _as_data(db: Any) -> Any:
    return db.model_dump() if isinstance(db, BaseModel) else db
