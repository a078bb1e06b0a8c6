"""A cache of simulator responses keyed by (conversation, seed), so that a re-run replays.

Keys are digests of everything that determines an answer: the endpoint, the model, the
sampling settings, the messages, the tools, the episode's seed and the purpose of the call.
The cache lives in memory (one per process, shared by every simulator), and optionally in a
JSONL file, which makes a re-run in a new process replay too.

>>> cache = ResponseCache()
>>> key = cache_key({"messages": [{"role": "user", "content": "hi"}], "seed": 1})
>>> cache.get(key) is None
True
>>> cache.put(key, {"content": "hello"})
>>> cache.get(key)
{'content': 'hello'}
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any


def cache_key(payload: dict[str, Any]) -> str:
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class ResponseCache:
    """In memory, plus an append-only JSONL file when ``path`` is given."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._items: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        if self.path is not None and self.path.exists():
            self._load(self.path)

    def _load(self, path: Path) -> None:
        with path.open(encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line from a killed run: the entry is simply re-asked
                if isinstance(row, dict) and "key" in row and "value" in row:
                    self._items[row["key"]] = row["value"]

    def get(self, key: str) -> Any | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
            return value

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"key": key, "value": value}, ensure_ascii=False) + "\n")

    def __len__(self) -> int:
        return len(self._items)


_default: ResponseCache | None = None
_default_lock = threading.Lock()


def default_cache() -> ResponseCache:
    """The process-wide cache; backed by the file named in ``TRAJECT_USER_CACHE`` if set."""
    global _default
    with _default_lock:
        if _default is None:
            _default = ResponseCache(os.environ.get("TRAJECT_USER_CACHE") or None)
        return _default
