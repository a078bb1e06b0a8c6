"""A cache of simulator responses keyed by (conversation, seed), so that a re-run replays.

Keys are digests of everything that determines an answer: the endpoint, the model, the
sampling settings, the messages, the tools, the episode's seed and the purpose of the call.
The cache lives in memory (one per process, shared by every simulator; the least recently used
entries beyond ``max_items`` are dropped), and optionally in a JSONL file, which makes a re-run
in a new process replay too.

>>> cache = ResponseCache()
>>> key = cache_key({"messages": [{"role": "user", "content": "hi"}], "seed": 1})
>>> cache.get(key) is None
True
>>> cache.put(key, {"content": "hello"})
>>> cache.get(key)
{'content': 'hello'}
>>> small = ResponseCache(max_items=2)
>>> for k in "abc":
...     small.put(k, k.upper())
>>> small.get("a") is None, small.get("c")
(True, 'C')
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any


def cache_key(payload: dict[str, Any]) -> str:
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class ResponseCache:
    """In memory (LRU, ``max_items``), plus an append-only JSONL file when ``path`` is given."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, max_items: int = 200_000) -> None:
        self.path = Path(path) if path is not None else None
        self.max_items = max_items
        self._items: OrderedDict[str, Any] = OrderedDict()
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
                    self._remember(row["key"], row["value"])

    def _remember(self, key: str, value: Any) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)

    def get(self, key: str) -> Any | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
                self._items.move_to_end(key)
            return value

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._remember(key, value)
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"key": key, "value": value}, ensure_ascii=False) + "\n")

    def clear(self) -> None:
        """Forget everything in memory (the file, if any, is left as it is)."""
        with self._lock:
            self._items.clear()

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
