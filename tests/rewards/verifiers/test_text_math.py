"""Exact match, token F1 (SQuAD normalisation) and math equivalence: worked examples."""

from __future__ import annotations

import anyio
import pytest

from traject.rewards.verifiers import ExactMatch, MathEquivalence, TokenF1, exact_match, math_equal, token_f1
from traject.rewards.verifiers.math import last_boxed, normalize_math
from traject.rewards.verifiers.text import normalize_answer
from traject.types import Task, Trajectory


def test_squad_normalisation_and_metrics():
    assert normalize_answer("  The Eiffel  Tower, Paris! ") == "eiffel tower paris"
    assert exact_match("an apple", "Apple.")
    assert not exact_match("apples", "apple")
    # pred "the cat sat on the mat" -> [cat, sat, on, mat]; gold "a cat on a mat" -> [cat, on, mat]
    # common 3: P = 3/4, R = 3/3, F1 = 2*0.75*1/1.75 = 6/7
    assert token_f1("the cat sat on the mat", "a cat on a mat") == pytest.approx(6 / 7)
    # repeated tokens count with multiplicity: pred [a1, a1, b], gold [a1, b]: common 2, P 2/3, R 1 -> 0.8
    assert token_f1("x x y", "x y") == pytest.approx(0.8)
    assert token_f1("", "") == 1.0 and token_f1("the", "cat") == 0.0


def test_text_rewards_read_the_answer_tag_and_best_gold():
    traj = Trajectory(task_id="q", final_answer="I think... <answer>Barack Obama</answer>")
    task = Task(id="q", answer=["Obama", "Barack Obama"])
    r = anyio.run(ExactMatch().score, traj, task)
    assert r.total == 1.0 and r.success
    r = anyio.run(TokenF1().score, Trajectory(task_id="q", final_answer="<answer>president obama</answer>"), task)
    assert r.total == pytest.approx(2 / 3)   # vs "Obama": P 1/2, R 1 -> 2/3; vs "Barack Obama": 1/2
    assert not r.success
    assert anyio.run(ExactMatch().score, traj, Task(id="q")).failed


@pytest.mark.parametrize("pred,gold,want", [
    ("\\boxed{\\dfrac{1}{2}}", "0.5", True),
    ("so $x = \\sqrt{8}$", "2\\sqrt{2}", True),
    ("The answer is \\boxed{10\\%}", "10", True),
    ("\\boxed{1,000}", "1000", True),
    ("\\frac12", "1/2", True),
    ("\\boxed{(1, 2)}", "(1,2)", True),
    ("\\boxed{(2, 1)}", "(1,2)", False),
    ("\\boxed{\\text{(B)}}", "B", True),
    ("2x+2", "2(x+1)", True),
    ("\\pi/2", "\\frac{\\pi}{2}", True),
    ("90^\\circ", "90", True),
    ("\\boxed{3.50}", "3.5", True),
    ("\\sqrt[3]{27}", "3", True),
    ("\\boxed{3}", "4", False),
    ("__import__('os').system('true')", "1", False),
    ("\\boxed{x^2}", "x^{2}", True),
])
def test_math_equal(pred, gold, want):
    assert math_equal(pred, gold) is want


def test_math_helpers_and_reward():
    assert last_boxed("a \\boxed{\\frac{1}{2}} then \\boxed{3}") == "3"
    assert last_boxed("\\boxed{\\frac{a}{b}}") == "\\frac{a}{b}"
    assert normalize_math("\\left( 1 \\right)") == "(1)"
    r = anyio.run(MathEquivalence().score, Trajectory(task_id="m", final_answer="... so \\boxed{\\tfrac{3}{4}}"),
                  Task(id="m", answer="0.75"))
    assert r.total == 1.0 and r.success
