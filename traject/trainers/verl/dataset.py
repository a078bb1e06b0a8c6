"""traject Tasks as the parquet that veRL's ``RLHFDataset`` reads.

One row per task, in the columns veRL 0.9.1 expects:

* ``prompt``: the task's opening chat messages (text), which ``RLHFDataset`` hands to the agent
  loop as ``raw_prompt``;
* ``data_source``: the env's name (veRL groups metrics by it);
* ``reward_model``: ``{"style": "traject", "ground_truth": <task.answer as JSON>}``;
* ``agent_name``: which registered agent loop runs the row (``traject``);
* ``extra_info``: ``index`` (veRL groups samples by it), and what the agent loop needs to
  rebuild the episode: the env name, the task id and the whole Task as JSON.

The Task travels as a JSON string so that tasks with different ``data`` payloads (from any env
or loader) share one parquet schema.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from traject.types import Message, Task

DEFAULT_AGENT_NAME = "traject"
REWARD_STYLE = "traject"


class RowInfo(BaseModel):
    """``extra_info`` of one row."""

    model_config = ConfigDict(extra="ignore")

    index: int
    task_id: str
    env: str
    split: str = "train"
    task: str

    def to_task(self) -> Task:
        return Task.model_validate_json(self.task)


def _prompt_messages(task: Task) -> list[dict[str, str]]:
    out = []
    for m in task.initial_messages():
        out.append({"role": m.role, "content": m.text})
    return out


def task_row(task: Task, index: int, *, env: str, agent_name: str = DEFAULT_AGENT_NAME,
             split: str = "train") -> dict[str, Any]:
    """The parquet row of one task."""
    return {
        "prompt": _prompt_messages(task),
        "data_source": env,
        "reward_model": {"style": REWARD_STYLE, "ground_truth": json.dumps(task.answer)},
        "agent_name": agent_name,
        "extra_info": RowInfo(index=index, task_id=task.id, env=env, split=split,
                              task=task.model_dump_json()).model_dump(),
    }


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema([
        ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        ("data_source", pa.string()),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
        ("agent_name", pa.string()),
        ("extra_info", pa.struct([("index", pa.int64()), ("task_id", pa.string()), ("env", pa.string()),
                                  ("split", pa.string()), ("task", pa.string())])),
    ])


def export_tasks(tasks: Iterable[Task], path: str | Path, *, env: str,
                 agent_name: str = DEFAULT_AGENT_NAME, split: str = "train") -> Path:
    """Write ``tasks`` as a veRL parquet file; return its path. Task ids must be unique."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow comes with the verl extra
        raise ImportError("exporting tasks for veRL needs pyarrow: pip install 'traject[verl]'") from exc
    rows = []
    seen: set[str] = set()
    for i, task in enumerate(tasks):
        if task.id in seen:
            raise ValueError(f"task id {task.id!r} appears twice; veRL groups samples by task, so ids "
                             "must be unique")
        seen.add(task.id)
        rows.append(task_row(task, i, env=env, agent_name=agent_name, split=split))
    if not rows:
        raise ValueError("no tasks to export")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=_schema()), path)
    return path


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of an exported parquet file, as Python dicts."""
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def task_from_row(extra_info: Any) -> Task:
    """Rebuild the Task of a row from its ``extra_info`` (a dict, as veRL passes it)."""
    if not isinstance(extra_info, dict) or "task" not in extra_info:
        raise ValueError("this row was not exported by traject: its extra_info has no 'task'; "
                         "export tasks with traject.trainers.verl.dataset.export_tasks")
    return RowInfo.model_validate(extra_info).to_task()


def prompt_messages(rows: Sequence[dict[str, Any]]) -> list[list[Message]]:
    """The ``prompt`` column of rows as traject Messages (for inspection and tests)."""
    return [[Message(role=m["role"], content=m["content"]) for m in row["prompt"]] for row in rows]


def read_tasks_jsonl(path: str | Path) -> list[Task]:
    """Tasks from a JSONL file, one Task object per line; errors name the file and line."""
    path = Path(path)
    tasks = []
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the task file: {exc.strerror}") from exc
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            tasks.append(Task.model_validate_json(line))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "(the line)"
            raise ValueError(f"{path}:{lineno}: not a task: field `{field}`: {err['msg']} "
                             "(each line must be a JSON object with at least an `id`)") from None
    return tasks
