"""Per-test results from a test runner's output, read the way SWE-bench reads them.

Where the ``swebench`` package (5.x, the ``interop`` extra) knows the repository, its own log
parser reads the output (:func:`swebench_parser`: the record's parser name, else SWE-bench's
parser for the repository), so statuses are SWE-bench's to the letter. traject's parsers below
are the fallback for repositories SWE-bench does not cover, or when the package is missing.

pytest's report is parsed by the rewards layer (``parse_pytest_report``: ``-rA`` summary and
``-v`` lines, full node ids). SWE-bench's own parser splits each summary line on whitespace and
keeps the second word, so a test id with a space in it (``test_x[two words]``) is published in
FAIL_TO_PASS/PASS_TO_PASS cut at its first space (``test_x[two``). :func:`swebench_keys` adds
that cut form of every id next to the full one, so both kinds of list match; when several tests
share a cut form, the worst status wins. Django's runner (``test_a (app.tests.T) ... ok``) has
a parser of its own here.

>>> from traject.rewards.verifiers.unit_tests import TestStatus
>>> keys = swebench_keys({"t.py::f[a b]": TestStatus.PASSED, "t.py::f[a c]": TestStatus.FAILED})
>>> keys["t.py::f[a"].value, keys["t.py::f[a b]"].value
('FAILED', 'PASSED')
"""

from __future__ import annotations

import re

from traject.rewards.verifiers.unit_tests import TestStatus, parse_pytest_report

_SEVERITY = {TestStatus.PASSED: 0, TestStatus.XFAIL: 0, TestStatus.SKIPPED: 1, TestStatus.XPASS: 2,
             TestStatus.FAILED: 3, TestStatus.ERROR: 4}
_DJANGO = re.compile(r"^(\w+ \([\w.]+\))(?: [^\n]*?)? \.\.\. (ok|OK|FAIL|ERROR|skipped.*|expected failure|"
                     r"unexpected success)\s*$")
_DJANGO_STATUS = {"ok": TestStatus.PASSED, "OK": TestStatus.PASSED, "FAIL": TestStatus.FAILED,
                  "ERROR": TestStatus.ERROR, "expected failure": TestStatus.XFAIL,
                  "unexpected success": TestStatus.XPASS}


def parse_django_report(text: str) -> dict[str, TestStatus]:
    """``test_name (module.Class) ... ok`` lines (Django's runner at verbosity 2)."""
    out: dict[str, TestStatus] = {}
    for line in text.splitlines():
        m = _DJANGO.match(line.strip())
        if not m:
            continue
        word = m.group(2)
        status = TestStatus.SKIPPED if word.startswith("skipped") else _DJANGO_STATUS[word]
        prev = out.get(m.group(1))
        if prev is None or _SEVERITY[status] > _SEVERITY[prev]:
            out[m.group(1)] = status
    return out


def swebench_keys(statuses: dict[str, TestStatus]) -> dict[str, TestStatus]:
    """``statuses`` plus each id cut at its first space (SWE-bench's published form)."""
    out = dict(statuses)
    cut: dict[str, TestStatus] = {}
    for test, status in statuses.items():
        key = test.split(" ", 1)[0]
        if key == test:
            continue
        prev = cut.get(key)
        if prev is None or _SEVERITY[status] > _SEVERITY[prev]:
            cut[key] = status
    for key, status in cut.items():
        prev = out.get(key)
        out[key] = status if prev is None or _SEVERITY[status] > _SEVERITY[prev] else prev
    return out


_SWEBENCH_STATUS = {"PASSED": TestStatus.PASSED, "FAILED": TestStatus.FAILED, "SKIPPED": TestStatus.SKIPPED,
                    "ERROR": TestStatus.ERROR, "XFAIL": TestStatus.XFAIL, "XPASS": TestStatus.XPASS}


def swebench_parser(repo: str | None, name: str = "auto"):  # noqa: ANN201 - swebench's parser function or None
    """SWE-bench's own log parser: by ``name`` (``parse_log_django``, ...) or, for ``auto``, the
    one SWE-bench uses for ``repo``. None when the package is not installed or does not know it."""
    try:
        from swebench.harness.log_parsers import PARSER_REGISTRY
    except ImportError:
        return None
    if name not in ("auto", ""):
        return PARSER_REGISTRY.get(name.removeprefix("swebench:"))
    import importlib

    for language in ("python", "javascript", "java", "go", "rust", "ruby", "php", "c"):
        try:
            module = importlib.import_module(f"swebench.harness.log_parsers.{language}")
        except ImportError:
            continue
        for table in (v for k, v in vars(module).items() if k.startswith("MAP_REPO_TO_PARSER")):
            if isinstance(table, dict) and repo in table:
                return table[repo]
    return None


def parse_with_swebench(text: str, parser, *, repo: str = "", instance_id: str = "", version: str = "",
                        log_parser: str = "") -> dict[str, TestStatus]:
    from swebench.types import TestSpec

    spec = TestSpec(instance_id=instance_id, image="", eval_script_list=[], repo=repo, version=version,
                    FAIL_TO_PASS=[], PASS_TO_PASS=[], log_parser=log_parser)
    raw = parser(text, spec)
    return {test: _SWEBENCH_STATUS[str(status)] for test, status in raw.items() if str(status) in _SWEBENCH_STATUS}


def report_parser(parser: str, repo: str | None) -> str:
    """Which parser reads a report: ``swebench:<name>`` or traject's ``pytest``/``django``."""
    if parser in ("pytest", "django"):
        return parser
    found = swebench_parser(repo, parser)
    if found is not None:
        return f"swebench:{found.__name__}"
    if parser not in ("auto", ""):
        raise ValueError(f"unknown log parser {parser!r}: use auto, pytest, django, or a swebench parser name "
                         "(the swebench package must be installed: pip install 'traject[interop]')")
    return "pytest"


def parse_report(text: str, parser: str, *, repo: str | None = None, instance_id: str = "",
                 version: str = "") -> dict[str, TestStatus]:
    chosen = report_parser(parser, repo)
    if chosen == "django":
        return parse_django_report(text)
    if chosen == "pytest":
        return swebench_keys(parse_pytest_report(text))
    name = chosen.removeprefix("swebench:")
    return parse_with_swebench(text, swebench_parser(repo, name), repo=repo or "", instance_id=instance_id,
                               version=version, log_parser=name)
