"""Load SWE-bench records (JSON or JSONL, as published) as traject Tasks.

Nothing is fetched: each record's repository must be on this machine, as a clone or a bare
mirror, found under ``repos_dir`` by its SWE-bench name (``owner__name``, ``owner/name`` or
``name``, with or without ``.git``), or given per record as ``repo_path``.

How to install and test a repository comes, per field, from the record itself, else ``specs``
(a JSON/YAML file or a dict ``{repo: {version: {python, pre_install, install, test_cmd,
pip_packages, apt_packages, log_parser}}}`` in SWE-bench's specs vocabulary, ``"*"`` matching
any version), else ``defaults``. A record in SWE-bench 5.x's format carries its own
``eval_script``: the test command between its ``>>>>> Start Test Output`` and ``>>>>> End Test
Output`` markers becomes ``test_cmd`` (it names the test files itself). Its ``log_parser``
names SWE-bench's parser, which reads the test output (see ``parsing.py``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from traject.environments.swe.task import SweTaskData
from traject.types import Task

REPOS_ENV = "TRAJECT_SWE_REPOS"
PROMPT = """<issue>
{problem_statement}
</issue>

The repository {repo} is checked out in the directory `{repo_dir}` (relative to your working directory, {workspace}), at the commit where the issue above was reported.
Change the repository's non-test files so that the issue is resolved. Use the `bash` and `file_editor` tools to explore, edit and run code; nothing can be installed and there is no network.
When you are done, call `submit`: the changes in the repository are your answer."""


class SweTaskError(ValueError):
    """A SWE-bench record that cannot be used; the message names the file, the record and the fix."""


def read_records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line or index, record) pairs of a JSON list or a JSONL file."""
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SweTaskError(f"{path}: not valid JSON at line {exc.lineno}: {exc.msg}") from None
        return [(i, r) for i, r in enumerate(data)]
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((lineno, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise SweTaskError(f"{path}:{lineno}: not a JSON object ({exc.msg}); a JSONL file holds one "
                               "SWE-bench record per line") from None
    return out


def find_repo(repos_dir: Path, repo: str) -> Path | None:
    owner, _, name = repo.partition("/")
    for candidate in (f"{owner}__{name}", f"{owner}__{name}.git", f"{owner}/{name}", f"{owner}/{name}.git",
                      name, f"{name}.git"):
        path = repos_dir / candidate
        if (path / ".git").exists() or (path / "HEAD").is_file():
            return path
    return None


def load_specs(specs: str | Path | dict[str, Any] | None) -> dict[str, Any]:
    if specs is None or isinstance(specs, dict):
        return dict(specs or {})
    path = Path(specs)
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(text) or {}
    return json.loads(text)


def _spec_for(specs: dict[str, Any], repo: str, version: str) -> dict[str, Any]:
    per_repo = specs.get(repo) or {}
    return {**(per_repo.get("*") or {}), **(per_repo.get(str(version)) or {})}


START_MARK, END_MARK = ">>>>> Start Test Output", ">>>>> End Test Output"


def eval_script_test_cmd(script: str) -> str | None:
    """The command(s) SWE-bench's eval script runs between its test-output markers.

    >>> eval_script_test_cmd("cd /testbed\\n: '>>>>> Start Test Output'\\npytest -rA t/test_a.py\\n"
    ...                           ": '>>>>> End Test Output'\\ngit checkout abc t/test_a.py")
    'pytest -rA t/test_a.py'
    """
    lines = script.splitlines()
    start = next((i for i, ln in enumerate(lines) if START_MARK in ln), None)
    end = next((i for i, ln in enumerate(lines) if END_MARK in ln), None)
    if start is None or end is None or end <= start + 1:
        return None
    commands = [ln.strip() for ln in lines[start + 1:end] if ln.strip() and not ln.strip().startswith("#")]
    return " && ".join(commands) or None


def render_prompt(data: SweTaskData, *, workspace: str = "/workspace", repo_dir: str = "repo") -> str:
    return PROMPT.format(problem_statement=data.problem_statement.strip(), repo=data.repo, repo_dir=repo_dir,
                         workspace=workspace)


def swe_task(data: SweTaskData, **metadata: Any) -> Task:
    return Task(id=data.instance_id, prompt=render_prompt(data), data=data.model_dump(mode="json"),
                metadata={"repo": data.repo, "version": data.version, **metadata})


def load_swebench(path: str | Path, *, repos_dir: str | Path | None = None, specs: Any = None,
                  defaults: dict[str, Any] | None = None, instance_ids: list[str] | None = None,
                  n: int | None = None) -> list[Task]:
    """Tasks from a SWE-bench JSON/JSONL file. Records keep their order; ``instance_ids``
    selects some, ``n`` keeps the first n."""
    path = Path(path)
    if not path.is_file():
        raise SweTaskError(f"SWE-bench file {path} does not exist")
    repos_root = Path(repos_dir or os.environ.get(REPOS_ENV) or path.parent / "repos")
    spec_map = load_specs(specs)
    wanted = set(instance_ids) if instance_ids else None
    tasks: list[Task] = []
    for where, record in read_records(path):
        if not isinstance(record, dict):
            raise SweTaskError(f"{path}:{where}: a record must be a JSON object, got {type(record).__name__}")
        iid = record.get("instance_id", f"#{where}")
        if wanted is not None and iid not in wanted:
            continue
        merged = {**(defaults or {}), **_spec_for(spec_map, str(record.get("repo", "")),
                                                  str(record.get("version", ""))), **record}
        if isinstance(record.get("eval_script"), str) and "test_cmd" not in record:
            command = eval_script_test_cmd(record["eval_script"])
            if command is not None:
                merged.update(test_cmd=command, test_files=[])
        if isinstance(record.get("log_parser"), str) and record["log_parser"].startswith("parse_log_"):
            merged["log_parser"] = f"swebench:{record['log_parser']}"
        try:
            data = SweTaskData.model_validate(merged)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "(record)"
            raise SweTaskError(f"{path}:{where}: record {iid!r}, field {field!r}: {first['msg']}") from None
        if data.repo_path is None:
            found = find_repo(repos_root, data.repo)
            if found is None:
                owner, _, name = data.repo.partition("/")
                raise SweTaskError(
                    f"{path}:{where}: record {iid!r}: no local copy of {data.repo} under {repos_root}: put a clone "
                    f"or a mirror (git clone --mirror) at {repos_root / f'{owner}__{name}'}, pass repos_dir=..., "
                    f"set ${REPOS_ENV}, or give the record a repo_path")
            data = data.model_copy(update={"repo_path": str(found.resolve())})
        elif not Path(data.repo_path).exists():
            raise SweTaskError(f"{path}:{where}: record {iid!r}: repo_path {data.repo_path} does not exist")
        tasks.append(swe_task(data, source=str(path)))
        if n is not None and len(tasks) >= n:
            break
    if wanted is not None:
        missing = wanted - {t.id for t in tasks}
        if missing and n is None:
            raise SweTaskError(f"{path}: no record with instance_id {', '.join(sorted(missing))}")
    return tasks
