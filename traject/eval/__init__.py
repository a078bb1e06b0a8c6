"""The eval harness: run a policy on an env's tasks into a resumable run directory, summarise
it with honest statistics, compare runs, and render a static HTML report.

Sits above ``traject.agents`` (it drives the Rollouts engine) and below the CLI.
"""

from traject.eval.config import ConfigError, EvalConfig, PolicyConfig, Pricing, TaskSource
from traject.eval.runner import run_eval
from traject.eval.stats import bootstrap_mean, pass_at_k, pass_hat_k
from traject.eval.summary import EvalSummary, summarize

__all__ = ["ConfigError", "EvalConfig", "EvalSummary", "PolicyConfig", "Pricing", "TaskSource",
           "bootstrap_mean", "pass_at_k", "pass_hat_k", "run_eval", "summarize"]
