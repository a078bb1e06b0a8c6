"""Registers the conversational envs: ``sql``, ``search``, ``customer_service``, ``empathy``.

The factories import their env on first use, so listing envs never pulls an optional extra;
``search`` needs ``bm25s`` (the ``search`` extra) and says so when it is missing.
"""

from __future__ import annotations

from typing import Any

from traject.environments.base import Env
from traject.environments.registry import register_env
from traject.types import Task


def _sql(**config: Any) -> Env:
    from traject.environments.sql.env import make_sql_env

    return make_sql_env(**config)


def _sql_tasks(**options: Any) -> list[Task]:
    from traject.environments.sql.env import sql_tasks

    return sql_tasks(**options)


def _search(**config: Any) -> Env:
    from traject.environments.search.env import make_search_env

    return make_search_env(**config)


def _search_tasks(**options: Any) -> list[Task]:
    from traject.environments.search.env import search_tasks

    return search_tasks(**options)


def _customer_service(**config: Any) -> Env:
    from traject.environments.customer_service.env import make_customer_service_env

    return make_customer_service_env(**config)


def _customer_service_tasks(**options: Any) -> list[Task]:
    from traject.environments.customer_service.tasks import customer_service_tasks

    return customer_service_tasks(**options)


def _empathy(**config: Any) -> Env:
    from traject.environments.empathy.env import make_empathy_env

    return make_empathy_env(**config)


def _empathy_tasks(**options: Any) -> list[Task]:
    from traject.environments.empathy.env import empathy_tasks

    return empathy_tasks(**options)


register_env("sql", _sql, tasks=_sql_tasks, task_data="traject.environments.sql.tools:SQLTaskData",
             description="Text-to-SQL on read-only SQLite (built-in shop db; Spider/BIRD via path=); "
                         "reward: execution match.")
register_env("search", _search, tasks=_search_tasks,
             description="Two-hop QA over a local BM25-indexed corpus (NQ-open/HotpotQA via path=); "
                         "reward: EM/F1. Needs the `search` extra.")
register_env("customer_service", _customer_service, tasks=_customer_service_tasks,
             description="tau-style customer service with an LLM-simulated customer (built-in shop domain; "
                         "tau2 domains via path=); reward: tau2 reward basis. Needs a user endpoint.")
register_env("empathy", _empathy, tasks=_empathy_tasks,
             description="RLVER empathetic dialogue with an emotion-tracking simulated user; "
                         "reward: final emotion / 100. Needs a user endpoint.")
