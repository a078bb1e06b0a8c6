"""Tasks as JSON lines, one Task record per line, with errors that name the line.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "t.jsonl"
>>> _ = p.write_text('{"id": "a", "prompt": "hi"}\\n{"id": "b", "prompt": 3}\\n')
>>> load_task_file(p)
Traceback (most recent call last):
...
traject.eval.config.ConfigError: ...t.jsonl:2: field 'prompt': ...
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ValidationError

from traject.eval.config import ConfigError, field_path
from traject.types import Task


def load_task_file(path: str | Path, data_model: type[BaseModel] | None = None, *, env: str = "") -> list[Task]:
    """The tasks of a JSONL file; with ``data_model`` (the env's task-data schema) each task's
    ``data`` is checked against it, and an error names the file, line, field and fix."""
    path = Path(path)
    try:
        fh = open(path, encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the task file: {exc.strerror}") from None
    tasks: list[Task] = []
    first_line: dict[str, int] = {}
    with fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{lineno}:{exc.colno}: not valid JSON: {exc.msg}. "
                                  "Each line must hold one Task object.") from None
            if not isinstance(obj, dict):
                raise ConfigError(f"{path}:{lineno}: expected a Task object "
                                  f"({{\"id\": ..., \"prompt\": ...}}), got {type(obj).__name__}")
            try:
                task = Task.model_validate(obj)
            except ValidationError as err:
                raise ConfigError(_task_error(err, f"{path}:{lineno}")) from None
            if task.id in first_line:
                raise ConfigError(f"{path}:{lineno}: duplicate task id {task.id!r} "
                                  f"(first on line {first_line[task.id]}); task ids must be unique")
            first_line[task.id] = lineno
            tasks.append(task)
    if not tasks:
        raise ConfigError(f"{path}: the task file holds no tasks")
    if data_model is not None:  # after the syntax of every line is known good
        for task in tasks:
            try:
                data_model.model_validate(task.data)
            except ValidationError as err:
                raise ConfigError(_data_error(err, f"{path}:{first_line[task.id]}", task.id, data_model, env)) from None
    return tasks


def _task_error(err: ValidationError, where: str) -> str:
    e = err.errors()[0]
    loc = field_path(e["loc"]) or "(record)"
    if e["type"] == "missing":
        return f"{where}: missing required field '{loc}' of a Task"
    if e["type"] == "extra_forbidden":
        return (f"{where}: unknown field '{loc}' in a Task; a Task has id, prompt, answer, data, "
                "metadata (put env payloads under 'data')")
    msgs = "; or ".join(dict.fromkeys(x["msg"] for x in err.errors() if field_path(x["loc"]) == field_path(e["loc"])))
    return f"{where}: field '{loc}': {msgs} (got {e.get('input')!r})"


def _data_error(err: ValidationError, where: str, task_id: str, model: type[BaseModel], env: str) -> str:
    e = err.errors()[0]
    loc = field_path(e["loc"])
    field = f"data.{loc}" if loc else "data"
    fields = ", ".join(f"{k}{'' if f.is_required() else '?'}" for k, f in model.model_fields.items())
    of = f"env {env!r}" if env else "the env"
    if e["type"] == "missing":
        problem = "missing"
    elif e["type"] == "extra_forbidden":
        problem = "not a field of the task data"
    else:
        problem = f"{e['msg']} (got {e.get('input')!r:.80})"
    return (f"{where}: task {task_id!r}: field '{field}': {problem}; {of} expects data with "
            f"{{{fields}}} ({model.__name__}; '?' marks optional fields)")


def write_task_file(path: str | Path, tasks: Iterable[Task]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for t in tasks:
            fh.write(t.model_dump_json() + "\n")
