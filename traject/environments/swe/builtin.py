"""Built-in SWE tasks: small Python repositories with a seeded bug, made on this machine.

Each repository is written as a real git repository (two commits with fixed authors and dates,
so the commit hashes are the same on every machine): ``environment_setup_commit`` holds the
project before the bug, ``base_commit`` adds the buggy code. The gold patch and the test patch
are ``git diff`` output, and the records are written as SWE-bench publishes them (JSONL,
FAIL_TO_PASS/PASS_TO_PASS as JSON-encoded strings, test ids cut at their first space) and read
back through :func:`~traject.environments.swe.loader.load_swebench`. Nothing needs the network
but the toolchain image (``python3-pytest``).

>>> [r.name for r in BUILTIN_REPOS]
['textkit', 'mathkit', 'datekit', 'listkit', 'strkit']
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from traject.environments.swe.loader import load_swebench
from traject.sandboxes.images import cache_dir
from traject.types import Task

GIT_ENV = {"GIT_AUTHOR_NAME": "traject", "GIT_AUTHOR_EMAIL": "traject@example.invalid",
           "GIT_COMMITTER_NAME": "traject", "GIT_COMMITTER_EMAIL": "traject@example.invalid",
           "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
SPLIT_OFFSET = {"train": 0, "test": 1, "validation": 2}


@dataclass(frozen=True)
class BuiltinRepo:
    name: str
    problem: str
    setup: dict[str, str]                  # files at environment_setup_commit
    base: dict[str, str]                   # files changed or added at base_commit (the bug)
    fix: dict[str, str]                    # the gold patch's files
    tests: dict[str, str]                  # the test patch's files
    fail_to_pass: list[str] = field(default_factory=list)
    # Like SWE-bench: only tests of the files the test patch touches (those are the ones run).
    pass_to_pass: list[str] = field(default_factory=list)
    version: str = "0.1"


def _pyproject(name: str) -> str:
    return f'[project]\nname = "{name}"\nversion = "0.1.0"\n\n[tool.pytest.ini_options]\ntestpaths = ["tests"]\n'


TEXTKIT = BuiltinRepo(
    name="textkit",
    problem=("slugify keeps upper-case letters\n\n`textkit.slug.slugify(\"Hello World\")` returns `Hello-World`; "
             "a slug should be all lower case (`hello-world`), as the docstring says."),
    setup={"pyproject.toml": _pyproject("textkit"), "textkit/__init__.py": "",
           "textkit/text.py": 'def truncate(text: str, n: int) -> str:\n    """Cut ``text`` to ``n`` characters, '
           'ending with an ellipsis when cut."""\n    return text if len(text) <= n else text[: max(n - 1, 0)] + "…"\n',
           "tests/test_text.py": "from textkit.text import truncate\n\n\ndef test_truncate():\n"
           '    assert truncate("abcdef", 4) == "abc…"\n    assert truncate("ab", 4) == "ab"\n'},
    base={"textkit/slug.py": 'import re\n\n\ndef slugify(text: str) -> str:\n    """A URL slug: lower-case words '
          'joined by hyphens, \'Hello, World!\' -> \'hello-world\'."""\n    words = re.findall(r"[A-Za-z0-9]+", text)\n'
          '    return "-".join(words)\n',
          "tests/test_slug.py": 'from textkit.slug import slugify\n\n\ndef test_slugify_numbers():\n'
          '    assert slugify("route 66") == "route-66"\n'},
    fix={"textkit/slug.py": 'import re\n\n\ndef slugify(text: str) -> str:\n    """A URL slug: lower-case words '
         'joined by hyphens, \'Hello, World!\' -> \'hello-world\'."""\n    words = re.findall(r"[A-Za-z0-9]+", text)\n'
         '    return "-".join(w.lower() for w in words)\n'},
    tests={"tests/test_slug.py": 'import pytest\n\nfrom textkit.slug import slugify\n\n\ndef test_slugify_numbers():\n'
           '    assert slugify("route 66") == "route-66"\n\n\n'
           '@pytest.mark.parametrize("text, slug", [("Hello World", "hello-world"), ("ABC def", "abc-def")],\n'
           '                         ids=["two words", "Mixed Case"])\n'
           'def test_slugify_lowercase(text, slug):\n    assert slugify(text) == slug\n'},
    fail_to_pass=["tests/test_slug.py::test_slugify_lowercase[two words]",
                  "tests/test_slug.py::test_slugify_lowercase[Mixed Case]"],
    pass_to_pass=["tests/test_slug.py::test_slugify_numbers"],
)

MATHKIT = BuiltinRepo(
    name="mathkit",
    problem=("clamp returns the lower bound for values above the range\n\n`mathkit.ops.clamp(15, 0, 10)` "
             "returns 0 but should return 10."),
    setup={"pyproject.toml": _pyproject("mathkit"), "mathkit/__init__.py": "",
           "mathkit/stats.py": "def mean(xs):\n    xs = list(xs)\n    return sum(xs) / len(xs) if xs else 0.0\n",
           "tests/test_stats.py": "from mathkit.stats import mean\n\n\ndef test_mean():\n"
           "    assert mean([1, 2, 3]) == 2\n    assert mean([]) == 0.0\n"},
    base={"mathkit/ops.py": "def clamp(x, lo, hi):\n    \"\"\"``x`` limited to the range [lo, hi].\"\"\"\n"
          "    if x < lo:\n        return lo\n    if x > hi:\n        return lo\n    return x\n",
          "tests/test_ops.py": "from mathkit.ops import clamp\n\n\ndef test_clamp_inside():\n    assert clamp(5, 0, 10) == 5\n\n\n"
          "def test_clamp_below():\n    assert clamp(-3, 0, 10) == 0\n"},
    fix={"mathkit/ops.py": "def clamp(x, lo, hi):\n    \"\"\"``x`` limited to the range [lo, hi].\"\"\"\n"
         "    if x < lo:\n        return lo\n    if x > hi:\n        return hi\n    return x\n"},
    tests={"tests/test_ops.py": "from mathkit.ops import clamp\n\n\ndef test_clamp_inside():\n    assert clamp(5, 0, 10) == 5\n\n\n"
           "def test_clamp_below():\n    assert clamp(-3, 0, 10) == 0\n\n\ndef test_clamp_above():\n"
           "    assert clamp(15, 0, 10) == 10\n"},
    fail_to_pass=["tests/test_ops.py::test_clamp_above"],
    pass_to_pass=["tests/test_ops.py::test_clamp_inside", "tests/test_ops.py::test_clamp_below"],
)

DATEKIT = BuiltinRepo(
    name="datekit",
    problem=("1900 is reported as a leap year\n\n`datekit.calendar.is_leap_year(1900)` is True. Century years "
             "are leap years only when divisible by 400 (2000 is, 1900 is not)."),
    setup={"pyproject.toml": _pyproject("datekit"), "datekit/__init__.py": ""},
    base={"datekit/calendar.py": "def is_leap_year(year: int) -> bool:\n    return year % 4 == 0\n\n\n"
          "def days_in_month(year: int, month: int) -> int:\n    if month == 2:\n"
          "        return 29 if is_leap_year(year) else 28\n    return 30 if month in (4, 6, 9, 11) else 31\n",
          "tests/test_calendar.py": "from datekit.calendar import days_in_month, is_leap_year\n\n\n"
          "def test_ordinary_years():\n    assert is_leap_year(2024) and not is_leap_year(2023)\n\n\n"
          "def test_days_in_month():\n    assert days_in_month(2023, 2) == 28 and days_in_month(2023, 4) == 30\n"},
    fix={"datekit/calendar.py": "def is_leap_year(year: int) -> bool:\n"
         "    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)\n\n\n"
         "def days_in_month(year: int, month: int) -> int:\n    if month == 2:\n"
         "        return 29 if is_leap_year(year) else 28\n    return 30 if month in (4, 6, 9, 11) else 31\n"},
    tests={"tests/test_calendar.py": "from datekit.calendar import days_in_month, is_leap_year\n\n\n"
           "def test_ordinary_years():\n    assert is_leap_year(2024) and not is_leap_year(2023)\n\n\n"
           "def test_days_in_month():\n    assert days_in_month(2023, 2) == 28 and days_in_month(2023, 4) == 30\n\n\n"
           "def test_century_years():\n    assert is_leap_year(2000) and not is_leap_year(1900)\n"
           "    assert days_in_month(1900, 2) == 28\n"},
    fail_to_pass=["tests/test_calendar.py::test_century_years"],
    pass_to_pass=["tests/test_calendar.py::test_ordinary_years", "tests/test_calendar.py::test_days_in_month"],
)

LISTKIT = BuiltinRepo(
    name="listkit",
    problem=("chunk drops the last, shorter chunk\n\n`listkit.seq.chunk([1, 2, 3, 4, 5], 2)` returns "
             "`[[1, 2], [3, 4]]`; the 5 is lost. Expected `[[1, 2], [3, 4], [5]]`."),
    setup={"pyproject.toml": _pyproject("listkit"), "listkit/__init__.py": "",
           "listkit/flat.py": "def flatten(xss):\n    return [x for xs in xss for x in xs]\n",
           "tests/test_flat.py": "from listkit.flat import flatten\n\n\ndef test_flatten():\n"
           "    assert flatten([[1], [2, 3], []]) == [1, 2, 3]\n"},
    base={"listkit/seq.py": "def chunk(xs, n):\n    \"\"\"Split ``xs`` into lists of ``n`` items (the last may be shorter).\"\"\"\n"
          "    return [xs[i:i + n] for i in range(0, len(xs) - n + 1, n)]\n",
          "tests/test_seq.py": "from listkit.seq import chunk\n\n\ndef test_chunk_exact():\n"
          "    assert chunk([1, 2, 3, 4], 2) == [[1, 2], [3, 4]]\n"},
    fix={"listkit/seq.py": "def chunk(xs, n):\n    \"\"\"Split ``xs`` into lists of ``n`` items (the last may be shorter).\"\"\"\n"
         "    return [xs[i:i + n] for i in range(0, len(xs), n)]\n"},
    tests={"tests/test_seq.py": "from listkit.seq import chunk\n\n\ndef test_chunk_exact():\n"
           "    assert chunk([1, 2, 3, 4], 2) == [[1, 2], [3, 4]]\n\n\ndef test_chunk_remainder():\n"
           "    assert chunk([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]\n"},
    fail_to_pass=["tests/test_seq.py::test_chunk_remainder"],
    pass_to_pass=["tests/test_seq.py::test_chunk_exact"],
)

STRKIT = BuiltinRepo(
    name="strkit",
    problem=("word_count counts empty words\n\n`strkit.words.word_count(\"a  b\")` (two spaces) returns 3. "
             "Runs of whitespace should separate words like a single space does."),
    setup={"pyproject.toml": _pyproject("strkit"), "strkit/__init__.py": ""},
    base={"strkit/words.py": "def word_count(text: str) -> int:\n    if not text:\n        return 0\n"
          "    return len(text.split(\" \"))\n",
          "tests/test_words.py": "from strkit.words import word_count\n\n\ndef test_word_count_simple():\n"
          "    assert word_count(\"a b c\") == 3 and word_count(\"\") == 0\n"},
    fix={"strkit/words.py": "def word_count(text: str) -> int:\n    return len(text.split())\n"},
    tests={"tests/test_words.py": "from strkit.words import word_count\n\n\ndef test_word_count_simple():\n"
           "    assert word_count(\"a b c\") == 3 and word_count(\"\") == 0\n\n\ndef test_word_count_many_spaces():\n"
           "    assert word_count(\"a  b\\t c \") == 3\n"},
    fail_to_pass=["tests/test_words.py::test_word_count_many_spaces"],
    pass_to_pass=["tests/test_words.py::test_word_count_simple"],
)

BUILTIN_REPOS: tuple[BuiltinRepo, ...] = (TEXTKIT, MATHKIT, DATEKIT, LISTKIT, STRKIT)


def _git(cwd: Path, *args: str, date: str = "2024-01-01T00:00:00+00:00") -> str:
    env = {**os.environ, **GIT_ENV, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}: {proc.stderr.strip()}")
    return proc.stdout


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _digest(repo: BuiltinRepo) -> str:
    payload = json.dumps([repo.setup, repo.base, repo.fix, repo.tests, repo.problem, repo.fail_to_pass,
                          repo.pass_to_pass], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def published_id(test: str) -> str:
    """How SWE-bench's published lists write a test id: cut at its first space."""
    return test.split(" ", 1)[0]


def make_repo(repo: BuiltinRepo, root: Path) -> dict:
    """Write ``repo`` under ``root`` (once: the directory name holds a hash of its content) and
    return its SWE-bench record."""
    dest = root / f"{repo.name}-{_digest(repo)}"
    record_path = dest.with_suffix(".json")
    if record_path.is_file() and (dest / ".git").is_dir():
        return json.loads(record_path.read_text())
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    _git(dest, "init", "-q", "-b", "main")
    _write(dest, repo.setup)
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "-m", "Project skeleton")
    setup_commit = _git(dest, "rev-parse", "HEAD").strip()
    _write(dest, repo.base)
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "-m", f"Add {', '.join(sorted(repo.base))}", date="2024-01-02T00:00:00+00:00")
    base_commit = _git(dest, "rev-parse", "HEAD").strip()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / "scratch"
        _git(Path(tmp), "clone", "-q", str(dest), str(scratch))
        _write(scratch, repo.fix)
        gold = _git(scratch, "diff", "--no-color")
        _git(scratch, "checkout", "-q", "--", ".")
        _write(scratch, repo.tests)
        _git(scratch, "add", "-A")
        test_patch = _git(scratch, "diff", "--cached", "--no-color")
    record = {
        "instance_id": f"traject__{repo.name}-1", "repo": f"traject/{repo.name}", "base_commit": base_commit,
        "environment_setup_commit": setup_commit, "version": repo.version, "problem_statement": repo.problem,
        "patch": gold, "test_patch": test_patch, "hints_text": "", "created_at": "2024-01-02T00:00:00Z",
        "FAIL_TO_PASS": json.dumps([published_id(t) for t in repo.fail_to_pass]),
        "PASS_TO_PASS": json.dumps([published_id(t) for t in repo.pass_to_pass]),
        "repo_path": str(dest), "install": [], "apt_packages": ["python3-pytest"],
    }
    record_path.write_text(json.dumps(record, indent=1))
    return record


def builtin_root() -> Path:
    path = cache_dir() / "swe" / "builtin"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_builtin_dataset(root: Path | None = None, names: list[str] | None = None) -> Path:
    """Make the built-in repositories and write their records as a SWE-bench JSONL file."""
    root = root or builtin_root()
    chosen = [r for r in BUILTIN_REPOS if not names or r.name in names]
    unknown = set(names or []) - {r.name for r in BUILTIN_REPOS}
    if unknown:
        raise ValueError(f"no built-in SWE repository named {', '.join(sorted(unknown))}; "
                         f"built-in: {', '.join(r.name for r in BUILTIN_REPOS)}")
    records = [make_repo(r, root) for r in chosen]
    path = root / ("builtin-" + "-".join(r.name for r in chosen) + ".jsonl")
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def builtin_swe_tasks(split: str = "test", n: int | None = None, seed: int = 0,
                      names: list[str] | None = None) -> list[Task]:
    """The built-in tasks, one per repository (``n`` keeps the first n). ``split`` and ``seed``
    only change the order; the problems are fixed."""
    if split not in SPLIT_OFFSET:
        raise ValueError(f"unknown split {split!r}; use one of {sorted(SPLIT_OFFSET)}")
    tasks = load_swebench(write_builtin_dataset(names=names))
    if seed:
        import random

        random.Random(seed * 31 + SPLIT_OFFSET[split]).shuffle(tasks)
    return tasks if n is None else tasks[:n]
