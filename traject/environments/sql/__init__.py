"""The ``sql`` env: text-to-SQL over read-only SQLite databases (built-in, Spider, BIRD)."""

from traject.environments.sql.database import QueryRefused, QueryTimeout, ReadOnlyDatabase, file_digest
from traject.environments.sql.env import SQLEnv, make_sql_env, sql_tasks
from traject.environments.sql.loaders import load_bird, load_spider

__all__ = ["QueryRefused", "QueryTimeout", "ReadOnlyDatabase", "SQLEnv", "file_digest", "load_bird", "load_spider",
           "make_sql_env", "sql_tasks"]
