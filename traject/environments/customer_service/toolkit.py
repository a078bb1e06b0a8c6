"""Domain toolkits: Python classes whose marked methods read or write a domain's database.

A toolkit is built around its database (``Toolkit(db)``) and marks its tools with
:func:`domain_tool`, flagging the ones that write. The marks are tau2-bench's own
(``__tool__``, ``__tool_type__``, ``__mutates_state__``), so a tau2 domain's toolkit class
(``tau2.domains.retail.tools.RetailTools``) is read the same way and runs unchanged.

Each marked method becomes a traject Tool: its schema comes from the type hints and the
docstring; arguments are checked against it (a bad call is an error the model reads), and the
method then gets the arguments exactly as the model sent them, as tau2 does, so replaying the
same calls gives the same database. A method that raises answers ``Error: <message>``, tau2's
wording.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, get_type_hints

from pydantic import BaseModel

from traject.tools.base import Tool, ToolOutput
from traject.tools.context import ToolContext
from traject.tools.decorator import FunctionTool

TOOL_ATTR = "__tool__"
TOOL_TYPE_ATTR = "__tool_type__"
MUTATES_ATTR = "__mutates_state__"
KINDS = ("read", "write", "think", "generic")


def domain_tool(fn: Callable[..., Any] | None = None, /, *, kind: str = "read",
                mutates: bool | None = None) -> Any:
    """Mark a toolkit method as a tool. ``kind="write"`` flags a tool that changes the database
    (``mutates`` defaults to that; set it for a write tool that changes nothing)."""
    if kind not in KINDS:
        raise ValueError(f"unknown tool kind {kind!r}; use one of {KINDS}")

    def mark(f: Callable[..., Any]) -> Callable[..., Any]:
        setattr(f, TOOL_ATTR, True)
        setattr(f, TOOL_TYPE_ATTR, kind)
        setattr(f, MUTATES_ATTR, kind == "write" if mutates is None else mutates)
        return f

    return mark(fn) if fn is not None else mark


def tool_kind(method: Any) -> str:
    kind = getattr(method, TOOL_TYPE_ATTR, "read")
    return str(getattr(kind, "value", kind)).lower()


def mutates_state(method: Any) -> bool:
    # tau2's rule: unmarked tools are assumed to mutate (safe for replay).
    return bool(getattr(method, MUTATES_ATTR, True))


def toolkit_methods(toolkit: Any) -> dict[str, Any]:
    """The toolkit's marked methods, bound, by name (in definition order, subclasses last)."""
    found: dict[str, Any] = {}
    for klass in reversed(type(toolkit).__mro__):
        for name, value in vars(klass).items():
            func = value.fget if isinstance(value, property) else value
            if callable(func) and getattr(func, TOOL_ATTR, False):
                found[name] = getattr(toolkit, name)
    return found


def is_toolkit_class(obj: Any) -> bool:
    return inspect.isclass(obj) and any(
        callable(v) and getattr(v, TOOL_ATTR, False) for k in obj.__mro__ for v in vars(k).values())


def db_model_of(toolkit_cls: type) -> type[BaseModel] | None:
    """The database model a toolkit expects, from its ``__init__``'s ``db`` hint or a class-level
    ``db: Model`` annotation; None when it takes plain JSON."""
    candidates: list[Any] = []
    for target in (toolkit_cls.__init__, toolkit_cls):
        try:
            hints = get_type_hints(target)
        except Exception:  # noqa: BLE001 - unresolvable forward references: no hint from here
            continue
        if "db" in hints:
            candidates.append(hints["db"])
    for hint in candidates:
        options = getattr(hint, "__args__", None) or (hint,)
        for option in options:
            if inspect.isclass(option) and issubclass(option, BaseModel):
                return option
    return None


def to_json_str(value: Any) -> str:
    """A tool's return value as the text the model reads (tau2's rendering, for identical outputs)."""
    if isinstance(value, str):
        return value

    def process(v: Any) -> Any:
        if isinstance(v, BaseModel):
            return v.model_dump()
        if isinstance(v, str) or v is None:
            return v
        if isinstance(v, bool | int | float):
            return str(v)
        if isinstance(v, list):
            return [process(x) for x in v]
        if isinstance(v, tuple):
            return tuple(process(x) for x in v)
        if isinstance(v, dict):
            return {k: process(x) for k, x in v.items()}
        if isinstance(v, datetime | date):
            return v.isoformat()
        raise ValueError(f"a tool returned a {type(v).__name__}, which cannot be shown to the model")

    return json.dumps(process(value), default=str)


def state_dict(db: Any) -> Any:
    if isinstance(db, BaseModel):
        return db.model_dump()
    return db


def db_hash(db: Any) -> str:
    """tau2's own database hash, ``get_dict_hash(db.model_dump())``: sha256 of
    ``json.dumps(..., sort_keys=True, default=str)`` of the database in Python mode."""
    blob = json.dumps(state_dict(db), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


_analysed: dict[tuple[type, str], FunctionTool] = {}


def analysed(method: Callable[..., Any], name: str) -> FunctionTool:
    """The schema and argument model of a toolkit method, worked out once per class (building
    them is most of the cost of a tool, and an env makes its tools every episode)."""
    owner = getattr(method, "__self__", None)
    func = getattr(method, "__func__", method)
    key = (type(owner) if owner is not None else type(None), name)
    tool = _analysed.get(key)
    if tool is None or tool.fn is not func:
        tool = _analysed[key] = FunctionTool(func, name=name, run_in_thread=False)
    return tool


class DomainTool(Tool):
    """One toolkit method as a traject Tool."""

    def __init__(self, name: str, method: Callable[..., Any], *, requestor: str = "assistant",
                 on_write: Callable[[], None] | None = None) -> None:
        self.name = name
        self.method = method
        self.on_write = on_write
        self.kind = tool_kind(method)
        self.mutates = mutates_state(method)
        self.requestor = requestor
        self._fn = analysed(method, name)
        self.description = self._fn.description
        self.parameters = self._fn.parameters

    def validate_arguments(self, arguments: dict[str, Any]) -> dict[str, Any]:
        self._fn.validate_arguments(arguments)
        return arguments

    async def __call__(self, ctx: ToolContext, arguments: dict[str, Any]) -> ToolOutput:
        self.validate_arguments(arguments)
        if self.mutates and self.on_write is not None:
            self.on_write()  # before the call: a write that raises halfway may still have written
        try:
            result = self.method(**arguments)
        except Exception as exc:  # noqa: BLE001 - a domain rule refusing the call is an answer
            return ToolOutput(content=f"Error: {exc}", is_error=True,
                              metadata={"kind": self.kind, "requestor": self.requestor})
        return ToolOutput(content=to_json_str(result), metadata={"kind": self.kind, "requestor": self.requestor,
                                                                 "writes": self.mutates})


def toolkit_tools(toolkit: Any, *, requestor: str = "assistant", include: list[str] | None = None,
                  on_write: Callable[[], None] | None = None) -> list[Tool]:
    methods = toolkit_methods(toolkit)
    if include is not None:
        unknown = sorted(set(include) - set(methods))
        if unknown:
            raise ValueError(f"tools {unknown} are not in {type(toolkit).__name__}; it has {sorted(methods)}")
        methods = {k: v for k, v in methods.items() if k in include}
    return [DomainTool(name, m, requestor=requestor, on_write=on_write) for name, m in methods.items()]
