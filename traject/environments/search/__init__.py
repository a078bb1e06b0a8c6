"""The ``search`` env: question answering over a local corpus with BM25 (needs the ``search`` extra)."""

from traject.environments.search.env import make_search_env, search_tasks
from traject.environments.search.loaders import load_hotpotqa, load_nq_open

__all__ = ["load_hotpotqa", "load_nq_open", "make_search_env", "search_tasks"]
