"""A customer-service domain, loaded from tau2-bench's layout::

    <root>/db.json            the database (db.toml works too)
    <root>/policy.md          the agent's policy, its system prompt (main_policy.md works too)
    <root>/tasks.json         tau2 tasks
    <root>/split_tasks.json   optional: {"train": [ids], "test": [ids], ...}
    <root>/user_db.json       optional: the user's own database, for user tools

and the domain's Python tools, found in this order: ``tools=`` (a class or ``"module:Class"``);
``<root>/tools.py`` (and ``user_tools.py``); the installed ``tau2`` package's
``tau2.domains.<name>.tools`` (and ``user_tools``). So with tau2-bench installed,
``load_domain("tau2-bench/data/tau2/domains/retail")`` runs tau2's own retail tools on tau2's
own database model, and replaying a task's gold actions gives the same database as tau2.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from traject.environments.customer_service.tau2_format import Tau2Task
from traject.environments.customer_service.toolkit import db_model_of, is_toolkit_class, toolkit_methods


class DomainError(ValueError):
    """A domain folder or file that is missing or malformed; the message names the file and the fix."""


@dataclass
class Domain:
    name: str
    policy: str
    db: Any                     # the initial database as loaded (JSON data)
    toolkit_cls: type
    tasks: list[Tau2Task]
    root: Path | None = None
    user_db: Any = None
    user_toolkit_cls: type | None = None
    splits: dict[str, list[str]] = field(default_factory=dict)
    tools_ref: str | None = None

    @property
    def db_model(self) -> type[BaseModel] | None:
        return db_model_of(self.toolkit_cls)

    @property
    def user_db_model(self) -> type[BaseModel] | None:
        return db_model_of(self.user_toolkit_cls) if self.user_toolkit_cls is not None else None

    def task(self, task_id: str) -> Tau2Task:
        for t in self.tasks:
            if t.id == task_id:
                return t
        raise KeyError(f"domain {self.name!r} has no task {task_id!r}")


def _read_data(path: Path, what: str) -> Any:
    try:
        if path.suffix == ".toml":
            return tomllib.loads(path.read_text(encoding="utf-8"))
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DomainError(f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno} "
                          f"(expected {what})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise DomainError(f"{path}: not valid TOML (expected {what}): {exc}") from exc


def _first(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_file()), None)


def _import_file(path: Path, module_name: str) -> Any:
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise DomainError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise DomainError(f"{path}: importing the domain's tools failed: {type(exc).__name__}: {exc}") from exc
    return module


def _toolkit_in(module: Any, where: str) -> type:
    classes = [obj for obj in vars(module).values()
               if is_toolkit_class(obj) and getattr(obj, "__module__", None) == module.__name__]
    if not classes:
        raise DomainError(f"{where}: no toolkit class (a class with methods marked by @domain_tool, or tau2's "
                          "@is_tool) is defined there")
    if len(classes) > 1:
        names = ", ".join(c.__name__ for c in classes)
        raise DomainError(f"{where}: several toolkit classes ({names}); pass tools='module:Class' to choose")
    return classes[0]


def resolve_toolkit(ref: str | type) -> type:
    """A toolkit class from a class or ``"package.module:Class"`` (or ``"package.module"``)."""
    if isinstance(ref, type):
        if not is_toolkit_class(ref):
            raise DomainError(f"{ref.__name__} has no methods marked as tools (@domain_tool or tau2's @is_tool)")
        return ref
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise DomainError(f"cannot import the tools module {module_name!r}: {exc}") from exc
    if not attr:
        return _toolkit_in(module, module_name)
    obj = getattr(module, attr, None)
    if obj is None or not is_toolkit_class(obj):
        raise DomainError(f"{ref}: not a toolkit class in {module_name}")
    return obj


def _tau2_module(name: str, part: str) -> Any | None:
    try:
        return importlib.import_module(f"tau2.domains.{name}.{part}")
    except ImportError:
        return None


def _find_toolkits(root: Path, name: str, tools: str | type | None,
                   user_tools: str | type | None) -> tuple[type, type | None, str | None]:
    """(agent toolkit, user toolkit, an import reference to the agent toolkit if it has one)."""
    folder_tools, folder_user_tools = root / "tools.py", root / "user_tools.py"
    tau2_tools = None
    if tools is not None:
        toolkit = resolve_toolkit(tools)
        ref = f"{toolkit.__module__}:{toolkit.__qualname__}"
    elif folder_tools.is_file():
        toolkit = _toolkit_in(_import_file(folder_tools, f"traject_domain_{name}_tools"), str(folder_tools))
        ref = None
    elif (tau2_tools := _tau2_module(name, "tools")) is not None:
        toolkit = _toolkit_in(tau2_tools, tau2_tools.__name__)
        ref = tau2_tools.__name__
    else:
        raise DomainError(f"{root}: the domain {name!r} has no tools: put a tools.py (a class with @domain_tool "
                          f"methods) in the folder, install tau2-bench (which provides tau2.domains.{name}.tools), "
                          "or pass tools='module:Class'")
    user_toolkit: type | None = None
    if user_tools is not None:
        user_toolkit = resolve_toolkit(user_tools)
    elif folder_user_tools.is_file():
        user_toolkit = _toolkit_in(_import_file(folder_user_tools, f"traject_domain_{name}_user_tools"),
                                   str(folder_user_tools))
    elif tau2_tools is not None and (tau2_user := _tau2_module(name, "user_tools")) is not None:
        user_toolkit = _toolkit_in(tau2_user, tau2_user.__name__)
    return toolkit, user_toolkit, ref


def load_domain(path: str | Path, *, name: str | None = None, tools: str | type | None = None,
                user_tools: str | type | None = None) -> Domain:
    root = Path(path)
    if not root.is_dir():
        raise DomainError(f"{root}: not a directory (expected a tau2 domain folder with db.json, policy.md and "
                          "tasks.json, e.g. tau2-bench/data/tau2/domains/retail)")
    name = name or root.name
    db_path = _first(root, ("db.json", "db.toml"))
    if db_path is None:
        raise DomainError(f"{root}: no db.json (expected the domain's database as JSON, or db.toml)")
    policy_path = _first(root, ("policy.md", "main_policy.md"))
    if policy_path is None:
        raise DomainError(f"{root}: no policy.md (expected the agent's policy as Markdown)")
    tasks_path = root / "tasks.json"
    if not tasks_path.is_file():
        raise DomainError(f"{root}: no tasks.json (expected a JSON list of tau2 tasks)")
    raw_tasks = _read_data(tasks_path, "a JSON list of tau2 tasks")
    if not isinstance(raw_tasks, list):
        raise DomainError(f"{tasks_path}: expected a JSON list of tasks, got a {type(raw_tasks).__name__}")
    tasks = []
    for i, raw in enumerate(raw_tasks):
        try:
            tasks.append(Tau2Task.model_validate(raw))
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(x) for x in first["loc"])
            raise DomainError(f"{tasks_path}: task {i} is not a tau2 task: field {loc!r}: {first['msg']} "
                              f"({exc.error_count()} problem(s); expected id, user_scenario, "
                              "evaluation_criteria, ...)") from exc
    splits: dict[str, list[str]] = {}
    if (split_path := root / "split_tasks.json").is_file():
        data = _read_data(split_path, '{"split name": [task ids]}')
        if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
            raise DomainError(f"{split_path}: expected an object mapping split names to lists of task ids")
        splits = {k: [str(x) for x in v] for k, v in data.items()}
    toolkit, user_toolkit, ref = _find_toolkits(root, name, tools, user_tools)
    user_db_path = _first(root, ("user_db.json", "user_db.toml"))
    domain = Domain(
        name=name, policy=policy_path.read_text(encoding="utf-8"), db=_read_data(db_path, "the domain database"),
        toolkit_cls=toolkit, tasks=tasks, root=root.resolve(),
        user_db=_read_data(user_db_path, "the user's database") if user_db_path else None,
        user_toolkit_cls=user_toolkit, splits=splits, tools_ref=ref,
    )
    _check_domain(domain, db_path)
    return domain


def _check_domain(domain: Domain, db_path: Path) -> None:
    """Fail at load time, naming the file, rather than in the middle of an episode."""
    model = domain.db_model
    if model is not None:
        try:
            model.model_validate(domain.db)
        except ValidationError as exc:
            raise DomainError(f"{db_path}: does not fit {model.__name__}, the database model of "
                              f"{domain.toolkit_cls.__name__}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from exc
    names = set(toolkit_methods(domain.toolkit_cls.__new__(domain.toolkit_cls)))
    user_names = (set(toolkit_methods(domain.user_toolkit_cls.__new__(domain.user_toolkit_cls)))
                  if domain.user_toolkit_cls else set())
    for task in domain.tasks:
        for action in task.criteria.actions or []:
            known = user_names if action.requestor == "user" else names
            if action.name not in known:
                raise DomainError(f"{domain.root / 'tasks.json' if domain.root else 'tasks'}: task {task.id!r} has a "
                                  f"gold action {action.name!r} ({action.requestor}) that the domain's tools do not have")


_cache: dict[tuple[str, str | None], Domain] = {}
_cache_lock = threading.Lock()


def cached_domain(path: str | Path, tools: str | None = None) -> Domain:
    """Each domain folder is loaded once per process."""
    key = (str(Path(path).resolve()), tools)
    with _cache_lock:
        if key not in _cache:
            _cache[key] = load_domain(path, tools=tools)
        return _cache[key]


def loaded_domains() -> list[Domain]:
    """The domains this process has loaded (through :func:`cached_domain`)."""
    with _cache_lock:
        return list(_cache.values())
