"""Verifiers: text match (EM, F1), math equivalence, SQL execution match, unit tests, DB state."""

from traject.rewards.verifiers.db_state import DBStateConfig, DBStateMatch, canonical_json, state_hash
from traject.rewards.verifiers.math import MathConfig, MathEquivalence, math_equal
from traject.rewards.verifiers.sql import SQLExecutionMatch, SQLMatchConfig, results_match, run_query
from traject.rewards.verifiers.text import ExactMatch, TextMatchConfig, TokenF1, exact_match, token_f1
from traject.rewards.verifiers.unit_tests import (TestRun, TestStatus, UnitTestConfig, UnitTestReward,
                                                  parse_pytest_report, run_tests)

__all__ = [
    "DBStateConfig", "DBStateMatch", "ExactMatch", "MathConfig", "MathEquivalence", "SQLExecutionMatch",
    "SQLMatchConfig", "TestRun", "TestStatus", "TextMatchConfig", "TokenF1", "UnitTestConfig", "UnitTestReward",
    "canonical_json", "exact_match", "math_equal", "parse_pytest_report", "results_match", "run_query",
    "run_tests", "state_hash", "token_f1",
]
