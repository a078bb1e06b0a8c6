"""Per-test results from a test runner's output, read the way SWE-bench reads them.

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


def parse_report(text: str, parser: str) -> dict[str, TestStatus]:
    if parser == "django":
        return parse_django_report(text)
    if parser == "pytest":
        return swebench_keys(parse_pytest_report(text))
    raise ValueError(f"unknown log parser {parser!r}: use pytest or django")
