"""The parquet export: veRL's columns, one schema for tasks of any env, tasks round-trip."""

from __future__ import annotations

import pytest

pa = pytest.importorskip("pyarrow", reason="pyarrow comes with the dev and verl extras")

from traject.environments.registry import load_tasks  # noqa: E402
from traject.trainers.verl.dataset import (  # noqa: E402
    export_tasks,
    read_rows,
    read_tasks_jsonl,
    task_from_row,
)
from traject.types import Message, Task  # noqa: E402


def test_export_has_verl_columns_and_round_trips(tmp_path):
    tasks = load_tasks("lookup", split="train", n=3, seed=0)
    tasks.append(Task(id="chat", prompt=[Message.system("be brief"), Message.user("hi")], answer={"a": [1, 2]},
                      data={"nested": {"x": [1, "two", None]}}, metadata={"source": "handmade"}))
    path = export_tasks(tasks, tmp_path / "train.parquet", env="lookup")
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    assert schema.names == ["prompt", "data_source", "reward_model", "agent_name", "extra_info"]
    rows = read_rows(path)
    assert [r["extra_info"]["index"] for r in rows] == [0, 1, 2, 3]
    assert {r["agent_name"] for r in rows} == {"traject"}
    assert {r["data_source"] for r in rows} == {"lookup"}
    assert rows[0]["prompt"] == [{"role": "user", "content": tasks[0].prompt}]
    assert rows[3]["prompt"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert rows[0]["reward_model"] == {"style": "traject", "ground_truth": str(tasks[0].answer)}
    for task, row in zip(tasks, rows, strict=True):
        assert task_from_row(row["extra_info"]) == task


def test_export_rejects_duplicates_and_foreign_rows(tmp_path):
    with pytest.raises(ValueError, match="appears twice"):
        export_tasks([Task(id="a", prompt="x"), Task(id="a", prompt="y")], tmp_path / "d.parquet", env="lookup")
    with pytest.raises(ValueError, match="not exported by traject"):
        task_from_row({"index": 0})


def test_task_files_errors_name_file_and_line(tmp_path):
    p = tmp_path / "tasks.jsonl"
    p.write_text(Task(id="ok", prompt="q").model_dump_json() + "\n" + '{"prompt": "no id"}\n')
    with pytest.raises(ValueError, match=r"tasks.jsonl:2: not a task: field `id`"):
        read_tasks_jsonl(p)
