"""Math answer equivalence: the last ``\\boxed{...}`` (else the last ``$...$``, else the whole
answer), normalised the way the MATH benchmark's ``is_equiv`` does (``\\dfrac`` -> ``\\frac``,
``\\left``/``\\right``, units of degrees and dollars, ``\\text{}`` wrappers, ``x = 5`` -> ``5``, ``1/2`` -> ``\\frac{1}{2}``,
``\\frac12`` -> ``\\frac{1}{2}``, thousands separators), compared as strings; failing that, both are
read into sympy (a whitelisted subset of LaTeX: numbers, single-letter variables, + - * / ^,
``\\frac``, ``\\sqrt``, ``\\pi``, a few functions) and compared numerically (relative tolerance)
or symbolically (``simplify(a - b) == 0``). Comma-separated answers compare element-wise, in
order.

>>> math_equal("\\\\boxed{\\\\dfrac{1}{2}}", "0.5")
True
>>> math_equal("x = \\\\sqrt{8}", "2\\\\sqrt{2}")
True
>>> math_equal("3", "4")
False
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict

from traject.rewards.base import Reward
from traject.rewards.verifiers._answer import agent_answer
from traject.types import RewardResult, Task, Trajectory

_ALLOWED_NAMES = {"sqrt", "pi", "sin", "cos", "tan", "log", "ln", "exp", "E"}
_MAX_SYMPY_LEN = 200


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` / ``\\fbox{...}`` (``\\boxed 5`` too)."""
    idx = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if idx < 0:
        return None
    rest = text[idx:]
    m = re.match(r"\\(?:boxed|fbox)\s+([^\s{$]+)", rest)
    if m:
        return m.group(1)
    start = rest.find("{")
    if start < 0:
        return None
    depth = 0
    for i in range(start, len(rest)):
        if rest[i] == "{":
            depth += 1
        elif rest[i] == "}":
            depth -= 1
            if depth == 0:
                return rest[start + 1: i]
    return None


def _fix_fracs(s: str) -> str:
    # \frac12 -> \frac{1}{2}, \frac1{b} -> \frac{1}{b}
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac(\d)\{", r"\\frac{\1}{", s)
    s = re.sub(r"\\frac\{([^{}]*)\}(\d)", r"\\frac{\1}{\2}", s)
    return s


def _unwrap(s: str, command: str) -> str:
    pattern = re.compile(r"\\" + command + r"\{([^{}]*)\}")
    while True:
        new = pattern.sub(r"\1", s)
        if new == s:
            return new
        s = new


def normalize_math(s: str) -> str:
    s = s.strip().replace("\n", "")
    for junk in ("\\!", "\\,", "\\;", "\\:", "\\ ", "\\left", "\\right", "\\displaystyle"):
        s = s.replace(junk, "")
    s = s.replace("\\\\", "\\").replace("tfrac", "frac").replace("dfrac", "frac")
    for deg in ("^{\\circ}", "^\\circ", "°"):
        s = s.replace(deg, "")
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    for cmd in ("text", "textbf", "mbox", "mathrm", "mathbf", "boxed"):
        s = _unwrap(s, cmd)
    s = s.strip().rstrip(".").strip()
    if re.fullmatch(r"\(?([A-Ea-e])\)?", s):
        return s.strip("()").upper()
    if "=" in s:
        lhs, rhs = s.split("=", 1)
        if len(lhs.strip()) <= 2:
            s = rhs
    s = re.sub(r"(?<![\d.])\.(\d)", r"0.\1", s)
    s = re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s)
    s = _fix_fracs(s)
    if re.fullmatch(r"-?\d+/\d+", s.strip()):
        a, b = s.strip().split("/")
        s = f"\\frac{{{a}}}{{{b}}}"
    s = s.replace(" ", "")
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")
    if re.fullmatch(r"-?\d+\.\d*?0+", s):
        s = s.rstrip("0").rstrip(".") if "." in s else s
    return s


def _braced(s: str, i: int) -> tuple[str, int]:
    """The content of the brace group opening at ``s[i]`` and the index after it."""
    if i >= len(s) or s[i] != "{":
        raise ValueError("expected {")
    depth = 0
    for j in range(i, len(s)):
        if s[j] == "{":
            depth += 1
        elif s[j] == "}":
            depth -= 1
            if depth == 0:
                return s[i + 1: j], j + 1
    raise ValueError("unbalanced braces")


def latex_to_expr(s: str) -> str:
    """A whitelisted LaTeX subset as a sympy expression string; ValueError outside it."""
    out: list[str] = []
    i = 0
    while i < len(s):
        if s.startswith("\\frac", i):
            num, j = _braced(s, i + 5)
            den, k = _braced(s, j)
            out.append(f"(({latex_to_expr(num)})/({latex_to_expr(den)}))")
            i = k
        elif s.startswith("\\sqrt", i):
            j = i + 5
            root = None
            if j < len(s) and s[j] == "[":
                end = s.index("]", j)
                root, j = s[j + 1: end], end + 1
            body, k = _braced(s, j)
            inner = latex_to_expr(body)
            out.append(f"(({inner})**(1/({latex_to_expr(root)})))" if root else f"sqrt({inner})")
            i = k
        elif s[i] == "\\":
            m = re.match(r"\\([a-zA-Z]+)", s[i:])
            if not m:
                raise ValueError(f"unsupported LaTeX at {s[i:i + 10]!r}")
            word = m.group(1)
            mapped = {"pi": "pi", "cdot": "*", "times": "*", "div": "/", "sin": "sin", "cos": "cos",
                      "tan": "tan", "ln": "log", "log": "log", "exp": "exp"}.get(word)
            if mapped is None:
                raise ValueError(f"unsupported LaTeX command \\{word}")
            out.append(f" {mapped} ")
            i += len(word) + 1
        elif s[i] == "^":
            if i + 1 < len(s) and s[i + 1] == "{":
                body, k = _braced(s, i + 1)
                out.append(f"**({latex_to_expr(body)})")
                i = k
            else:
                out.append("**")
                i += 1
        elif s[i] in "{}":
            out.append("(" if s[i] == "{" else ")")
            i += 1
        else:
            out.append(s[i])
            i += 1
    expr = "".join(out)
    if not re.fullmatch(r"[0-9a-zA-Z+\-*/().\s]*", expr):
        raise ValueError(f"characters outside the math subset in {expr!r}")
    for name in re.findall(r"[a-zA-Z]+", expr):
        if len(name) > 1 and name not in _ALLOWED_NAMES:
            raise ValueError(f"unknown name {name!r}")
    return expr


def to_sympy(s: str) -> Any:
    if len(s) > _MAX_SYMPY_LEN:
        raise ValueError("too long to parse")
    from sympy.parsing.sympy_parser import (implicit_multiplication_application, parse_expr,
                                            standard_transformations)

    expr = latex_to_expr(s)
    return parse_expr(expr, transformations=standard_transformations + (implicit_multiplication_application,),
                      evaluate=True)


def _split_top(s: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def _equal_one(a: str, b: str, rel_tol: float) -> bool:
    if a == b:
        return True
    try:
        ea, eb = to_sympy(a), to_sympy(b)
    except Exception:  # noqa: BLE001 - outside the subset sympy reads: not equal
        return False
    try:
        if not ea.free_symbols and not eb.free_symbols:
            fa, fb = complex(ea.evalf()), complex(eb.evalf())
            return abs(fa - fb) <= rel_tol * max(1.0, abs(fb))
        import sympy

        return bool(sympy.simplify(ea - eb) == 0)
    except Exception:  # noqa: BLE001
        return False


def final_answer(text: str) -> str:
    """The last ``\\boxed{}``, else the last ``$...$`` span, else the whole text."""
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    spans = re.findall(r"\$([^$]+)\$", text)
    return spans[-1] if spans else text


def math_equal(pred: str, gold: str, *, rel_tol: float = 1e-6) -> bool:
    """Whether two final answers are the same mathematical object."""
    a = normalize_math(final_answer(pred))
    b = normalize_math(final_answer(gold))
    if a == b:
        return True
    pa, pb = _split_top(a), _split_top(b)
    if len(pa) != len(pb):
        return False
    if len(pa) > 1:
        strip = lambda t: t.strip("()[]")  # noqa: E731
        return all(_equal_one(strip(x), strip(y), rel_tol) for x, y in zip(pa, pb, strict=True))
    return _equal_one(a, b, rel_tol)


class MathConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "math_equal"
    rel_tol: float = 1e-6
    answer_pattern: str | None = None


class MathEquivalence(Reward):
    """1 when the agent's answer (its last ``\\boxed{}``, else all of it) equals ``task.answer``."""

    def __init__(self, config: MathConfig | None = None) -> None:
        self.config = config or MathConfig()
        self.name = self.config.name

    async def score(self, traj: Trajectory, task: Task) -> RewardResult:
        if task.answer is None:
            return RewardResult(failed=True, error=f"task {task.id!r} has no answer to compare with")
        pred = agent_answer(traj, self.config.answer_pattern)
        ok = pred is not None and math_equal(pred, str(task.answer), rel_tol=self.config.rel_tol)
        v = 1.0 if ok else 0.0
        return RewardResult(total=v, components={self.name: v}, success=ok, info={"prediction": pred})
