"""``@tool``: a typed Python function becomes a Tool.

>>> from traject.tools import tool
>>> @tool
... def add(a: int, b: int = 0) -> str:
...     '''Add two integers.
...
...     Args:
...         a: The first addend.
...         b: The second addend.
...     '''
...     return str(a + b)
>>> add.schema.parameters["properties"]["a"]
{'description': 'The first addend.', 'type': 'integer'}
>>> add.schema.parameters["required"]
['a']
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any, get_type_hints, overload

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from traject.tools.base import Tool, ToolArgumentError, ToolOutput
from traject.tools import blocking
from traject.tools.context import ToolContext
from traject.types import ToolSchema

_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Returns|Raises|Yields|Examples?|Notes?):\s*$")
_ARG_LINE = re.compile(r"^\s*\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SPHINX = re.compile(r"^\s*:param\s+(?:\w+\s+)?(\w+)\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google- or Sphinx-style docstring into (description, {arg: description})."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    arg_indent: int | None = None
    for line in lines:
        if m := _SECTION.match(line):
            section, current, arg_indent = m.group(1), None, None
            continue
        if m := _SPHINX.match(line):
            current = m.group(1)
            args[current] = m.group(2).strip()
            section = "Args"
            continue
        if section is None:
            summary.append(line)
        elif section in ("Args", "Arguments", "Parameters"):
            indent = len(line) - len(line.lstrip())
            m = _ARG_LINE.match(line)
            if m and (arg_indent is None or indent <= arg_indent):
                current, arg_indent = m.group(1), indent
                args[current] = m.group(2).strip()
            elif current and line.strip():
                args[current] = (args[current] + " " + line.strip()).strip()
    description = "\n".join(summary).strip()
    return description, args


def _strip_titles(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip_titles(v) for k, v in schema.items() if k != "title" or not isinstance(v, str)}
    if isinstance(schema, list):
        return [_strip_titles(v) for v in schema]
    return schema


def _takes_context(param: inspect.Parameter, hints: dict[str, Any]) -> bool:
    hint = hints.get(param.name)
    return hint is ToolContext or (hint is None and param.name in ("ctx", "context"))


def format_validation_error(tool_name: str, err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(arguments)"
        if e["type"] == "extra_forbidden":
            parts.append(f"unexpected argument '{loc}'")
        elif e["type"] == "missing":
            parts.append(f"missing required argument '{loc}'")
        else:
            parts.append(f"argument '{loc}': {e['msg']} (got {e.get('input')!r})")
    return f"invalid arguments for tool '{tool_name}': " + "; ".join(parts)


class FunctionTool(Tool):
    """A Tool backed by a Python function (sync or async). Built by ``@tool``."""

    def __init__(self, fn: Callable[..., Any], *, name: str | None = None,
                 description: str | None = None, timeout_s: float | None = None,
                 run_in_thread: bool | None = None, isolate: bool = False, _bound: Any = None) -> None:
        self.fn = fn
        self._bound = _bound
        self.name = name or fn.__name__
        self.timeout_s = timeout_s
        self.is_async = inspect.iscoroutinefunction(fn)
        # Sync tools go to a daemon thread that a timeout abandons (traject.tools.blocking) so they
        # cannot block the event loop, unless the author says they are cheap (run_in_thread=False).
        # isolate=True: a worker process, killed on timeout.
        self.run_in_thread = (not self.is_async) if run_in_thread is None else run_in_thread
        self.isolate = isolate
        doc_description, arg_docs = parse_docstring(fn.__doc__)
        self.description = description if description is not None else doc_description

        hints = get_type_hints(fn, include_extras=True)
        sig = inspect.signature(fn)
        params = list(sig.parameters.values())
        if params and params[0].name == "self":
            params = params[1:]
        self.takes_ctx = bool(params) and _takes_context(params[0], hints)
        if self.takes_ctx:
            params = params[1:]
        fields: dict[str, Any] = {}
        for p in params:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise TypeError(f"@tool {self.name}: *args/**kwargs cannot be described to a model")
            annotation = hints.get(p.name, Any)
            default = ... if p.default is inspect.Parameter.empty else p.default
            from pydantic import Field

            fields[p.name] = (annotation, Field(default, description=arg_docs.get(p.name)))
        if isolate and (self.is_async or self.takes_ctx or _bound is not None or "<locals>" in fn.__qualname__):
            raise TypeError(f"@tool(isolate=True) {self.name}: an isolated tool must be a synchronous, "
                            "module-level function without a ToolContext (it is imported by name in "
                            "a worker process)")
        self.args_model: type[BaseModel] = create_model(
            f"{self.name}_arguments", __config__=ConfigDict(extra="forbid"), **fields
        )
        self.parameters = _strip_titles(self.args_model.model_json_schema())
        self.parameters.setdefault("properties", {})
        self.parameters.setdefault("required", [])
        self._schema: ToolSchema | None = None

    @property
    def schema(self) -> ToolSchema:
        # Built once: envs ask for it every episode, and validating the JSON schema is not free.
        if self._schema is None:
            self._schema = ToolSchema(name=self.name, description=self.description, parameters=self.parameters)
        return self._schema

    def __get__(self, instance: Any, owner: type | None = None) -> FunctionTool:
        # Used as a method of a Toolset: bind to the instance, keep the analysed schema.
        if instance is None:
            return self
        bound = object.__new__(FunctionTool)
        bound.__dict__.update(self.__dict__)
        bound._bound = instance
        return bound

    def validate_arguments(self, arguments: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(arguments, dict):
            raise ToolArgumentError(
                f"invalid arguments for tool '{self.name}': expected a JSON object, got {type(arguments).__name__}"
            )
        try:
            model = self.args_model.model_validate(arguments)
        except ValidationError as err:
            raise ToolArgumentError(format_validation_error(self.name, err)) from None
        return {k: getattr(model, k) for k in type(model).model_fields}

    async def __call__(self, ctx: ToolContext, arguments: dict[str, Any]) -> ToolOutput:
        kwargs = self.validate_arguments(arguments)
        args: list[Any] = []
        if self._bound is not None:
            args.append(self._bound)
        if self.takes_ctx:
            args.append(ctx)
        if self.is_async:
            result = await self.fn(*args, **kwargs)
        elif self.isolate:
            result = await blocking.run_isolated(self.fn, kwargs)
        elif self.run_in_thread:
            result = await blocking.run_in_thread(lambda: self.fn(*args, **kwargs))
        else:
            result = self.fn(*args, **kwargs)
        return ToolOutput.coerce(result)


@overload
def tool(fn: Callable[..., Any], /) -> FunctionTool: ...
@overload
def tool(*, name: str | None = None, description: str | None = None, timeout_s: float | None = None,
         run_in_thread: bool | None = None, isolate: bool = False) -> Callable[[Callable[..., Any]], FunctionTool]: ...


def tool(fn: Callable[..., Any] | None = None, /, *, name: str | None = None,
         description: str | None = None, timeout_s: float | None = None,
         run_in_thread: bool | None = None, isolate: bool = False) -> Any:
    """Make a Tool of a function. The first parameter may be a ``ToolContext``; the others
    become the JSON-schema arguments, described by the docstring's ``Args:`` section.

    A sync tool runs in a daemon thread that a timeout abandons; ``isolate=True`` runs it in a
    worker process that a timeout kills (a module-level function without a ToolContext)."""

    def wrap(f: Callable[..., Any]) -> FunctionTool:
        return FunctionTool(f, name=name, description=description, timeout_s=timeout_s,
                            run_in_thread=run_in_thread, isolate=isolate)

    return wrap(fn) if fn is not None else wrap
