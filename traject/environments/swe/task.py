"""SweTaskData: a SWE-bench record, plus how to install and test its repository.

The SWE-bench fields are kept as published (``FAIL_TO_PASS``/``PASS_TO_PASS`` may be
JSON-encoded strings there; here they become lists). The execution fields are not part of
SWE-bench: ``python`` (the Python version the repository and version need, as SWE-bench's specs
give it: the environment image is built on the Debian suite that ships it), ``pre_install`` and
``install`` (shell commands run once, at ``environment_setup_commit``, when the environment
image is built), ``apt_packages``/``pip_packages`` (the toolchain), ``test_cmd`` (run with the
test files of ``test_patch`` appended) and ``log_parser``. ``repo_path`` is the repository on
this machine: a clone or a bare mirror.

``log_parser``: ``auto`` (the default) reads the test output with SWE-bench's own parser for the
repository (the ``swebench`` package, ``interop`` extra), or the record's ``swebench`` parser
name (``parse_log_pytest_v2``, ...), falling back to traject's ``pytest`` parser for
repositories SWE-bench does not know; ``pytest`` and ``django`` force traject's own.
"""

from __future__ import annotations

import json
import re
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_TEST_CMD = "python3 -m pytest -rA --tb=short -p no:cacheprovider"
_DIFF_FILE = re.compile(r"^diff --git a/(\S+) b/(\S+)$", re.MULTILINE)


class SweTaskData(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # --- SWE-bench ---------------------------------------------------------------------------
    instance_id: str
    repo: str = Field(description="owner/name, as SWE-bench writes it")
    base_commit: str
    problem_statement: str
    patch: str = Field("", description="the gold patch")
    test_patch: str = ""
    FAIL_TO_PASS: list[str] = Field(default_factory=list)
    PASS_TO_PASS: list[str] = Field(default_factory=list)
    environment_setup_commit: str | None = None
    version: str = ""
    hints_text: str = ""
    # --- how to run it -----------------------------------------------------------------------
    repo_path: str | None = Field(None, description="a clone or a bare mirror of the repository on this machine")
    python: str | None = Field(None, description="the Python version, X.Y (SWE-bench specs' 'python'); "
                               "None: the base image's")
    pre_install: list[str] = Field(default_factory=list, description="shell commands run before install "
                                   "(SWE-bench specs' 'pre_install')")
    install: list[str] = Field(default_factory=list, description="shell commands run in the repository "
                               "at environment_setup_commit when the environment image is built")
    apt_packages: list[str] = Field(default_factory=lambda: ["python3-pytest"])
    pip_packages: list[str] = Field(default_factory=list)
    test_cmd: str = DEFAULT_TEST_CMD
    test_files: list[str] | None = Field(None, description="default: the files test_patch touches")
    log_parser: str = Field("auto", description="auto, pytest, django, or a swebench parser name")

    @field_validator("FAIL_TO_PASS", "PASS_TO_PASS", mode="before")
    @classmethod
    def _decode_list(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else []
            except json.JSONDecodeError as exc:
                raise ValueError(f"a JSON-encoded list of test ids was expected: {exc.msg}") from None
        return value

    @field_validator("python", mode="before")
    @classmethod
    def _version(cls, value: object) -> object:
        return str(value) if isinstance(value, int | float) else value

    @field_validator("install", "pre_install", "apt_packages", "pip_packages", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> SweTaskData:
        if not re.fullmatch(r"[0-9a-fA-F]{7,40}", self.base_commit):
            raise ValueError(f"base_commit {self.base_commit!r} is not a commit hash")
        return self

    @property
    def setup_commit(self) -> str:
        return self.environment_setup_commit or self.base_commit

    @property
    def tests_to_run(self) -> list[str]:
        return self.test_files if self.test_files is not None else patch_files(self.test_patch)

    @property
    def full_test_cmd(self) -> str:
        files = " ".join(_shell_quote(f) for f in self.tests_to_run)
        return f"{self.test_cmd} {files}".strip()


def patch_files(patch: str) -> list[str]:
    """The files a unified git diff touches, in order."""
    out: list[str] = []
    for a, b in _DIFF_FILE.findall(patch):
        path = b if b != "/dev/null" else a
        if path not in out:
            out.append(path)
    return out


def _shell_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)
