"""SWE env: repositories in Docker sandboxes, SWE-bench tasks, tests as reward, G-RA."""

from traject.environments.swe.builtin import BUILTIN_REPOS, builtin_swe_tasks, write_builtin_dataset
from traject.environments.swe.env import SweConfig, SweEnv, SweSetupError
from traject.environments.swe.images import ensure_env_image
from traject.environments.swe.loader import SweTaskError, load_swebench
from traject.environments.swe.metrics import SweMetrics, swe_metrics
from traject.environments.swe.parsing import parse_django_report, parse_report, swebench_keys
from traject.environments.swe.reward import (OUTCOME_LEVELS, StepRewardConfig, SweOutcome, SweStepRewards,
                                             outcome_level, swe_reward)
from traject.environments.swe.task import SweTaskData, patch_files

__all__ = [
    "BUILTIN_REPOS", "OUTCOME_LEVELS", "StepRewardConfig", "SweConfig", "SweEnv", "SweMetrics", "SweOutcome",
    "SweSetupError", "SweStepRewards", "SweTaskData", "SweTaskError", "builtin_swe_tasks", "ensure_env_image",
    "load_swebench", "outcome_level", "parse_django_report", "parse_report", "patch_files", "swe_metrics",
    "swe_reward", "swebench_keys", "write_builtin_dataset",
]
