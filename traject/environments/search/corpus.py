"""A local corpus (JSONL: ``id``, ``title``, ``text``) and its BM25 index.

The index is built with ``bm25s`` (the ``search`` extra) once and cached next to the corpus,
in ``<corpus>.bm25s/``, with a fingerprint of the corpus file: a changed corpus is re-indexed,
an unchanged one is loaded. Where the corpus's folder is not writable, the index goes to
``$TRAJECT_CACHE_DIR/search/``. In a process, each corpus is loaded once and shared.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

log = logging.getLogger(__name__)
INDEX_FORMAT = 1


def require_bm25s() -> Any:
    try:
        import bm25s
    except ImportError as exc:
        raise ImportError("the search env needs bm25s: install the `search` extra "
                          "(pip install 'traject[search]')") from exc
    return bm25s


class Document(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    title: str = ""
    text: str

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v


class SearchHit(BaseModel):
    id: str
    title: str
    score: float
    snippet: str


def read_corpus(path: Path) -> list[Document]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: corpus file not found (expected JSONL, one "
                                '{"id": ..., "title": ..., "text": ...} per line)')
    docs: list[Document] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                doc = Document.model_validate(json.loads(line))
            except (json.JSONDecodeError, ValidationError) as exc:
                raise ValueError(f"{path}, line {n}: not a corpus document (expected a JSON object with string "
                                 f"fields id, text and optionally title): {exc}") from exc
            if doc.id in seen:
                raise ValueError(f"{path}, line {n}: document id {doc.id!r} appears twice; ids must be unique")
            seen.add(doc.id)
            docs.append(doc)
    if not docs:
        raise ValueError(f"{path}: the corpus is empty (expected JSONL documents)")
    return docs


def file_fingerprint(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_dir() -> Path:
    return Path(os.environ.get("TRAJECT_CACHE_DIR") or Path.home() / ".cache" / "traject")


@dataclass
class SearchIndex:
    """A corpus with its BM25 index."""

    path: Path
    docs: list[Document]
    retriever: Any
    index_dir: Path

    def __post_init__(self) -> None:
        self.by_id = {d.id: d for d in self.docs}

    @staticmethod
    def _tokenize(texts: list[str]) -> Any:
        return require_bm25s().tokenize(texts, stopwords="en", show_progress=False)

    def search(self, query: str, k: int = 5, snippet_chars: int = 240) -> list[SearchHit]:
        k = max(1, min(k, len(self.docs)))
        results, scores = self.retriever.retrieve(self._tokenize([query]), k=k, show_progress=False)
        hits = []
        for idx, score in zip(results[0], scores[0], strict=True):
            if float(score) <= 0.0:
                continue
            doc = self.docs[int(idx)]
            snippet = doc.text if len(doc.text) <= snippet_chars else doc.text[:snippet_chars].rsplit(" ", 1)[0] + " ..."
            hits.append(SearchHit(id=doc.id, title=doc.title, score=round(float(score), 4), snippet=snippet))
        return hits


def _candidate_dirs(path: Path, fingerprint: str) -> list[Path]:
    return [path.with_name(path.name + ".bm25s"),
            cache_dir() / "search" / f"{path.stem}-{fingerprint[:16]}.bm25s"]


def _load_or_build(path: Path) -> SearchIndex:
    bm25s = require_bm25s()
    docs = read_corpus(path)
    fingerprint = file_fingerprint(path)
    meta = {"format": INDEX_FORMAT, "corpus_sha256": fingerprint, "bm25s": getattr(bm25s, "__version__", "?"),
            "documents": len(docs), "stopwords": "en"}
    for index_dir in _candidate_dirs(path, fingerprint):
        meta_path = index_dir / "traject_index.json"
        try:
            if meta_path.is_file() and json.loads(meta_path.read_text()) == meta:
                retriever = bm25s.BM25.load(str(index_dir))
                return SearchIndex(path, docs, retriever, index_dir)
        except (OSError, ValueError) as exc:
            log.warning("search index at %s is unreadable (%s); rebuilding it", index_dir, exc)
    retriever = bm25s.BM25()
    retriever.index(SearchIndex._tokenize([f"{d.title}\n{d.text}" for d in docs]), show_progress=False)
    for index_dir in _candidate_dirs(path, fingerprint):
        tmp: Path | None = None
        try:
            index_dir.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=index_dir.parent, prefix=index_dir.name + ".tmp"))
            retriever.save(str(tmp))
            (tmp / "traject_index.json").write_text(json.dumps(meta))
            if index_dir.is_dir():
                shutil.rmtree(index_dir, ignore_errors=True)
            os.replace(tmp, index_dir)
            return SearchIndex(path, docs, retriever, index_dir)
        except OSError as exc:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            log.info("cannot cache the search index in %s (%s); trying the next place", index_dir, exc)
    log.warning("the search index of %s could not be cached anywhere; it lives in memory only", path)
    return SearchIndex(path, docs, retriever, Path())


_indexes: dict[tuple[str, float, int], SearchIndex] = {}
_lock = threading.Lock()


def get_index(path: str | Path) -> SearchIndex:
    """The index of the corpus at ``path``: loaded once per process (rebuilt if the file changed).
    Blocking: call it from a worker thread."""
    p = Path(path).resolve()
    if not p.is_file():
        raise FileNotFoundError(f"{p}: corpus file not found (expected JSONL, one "
                                '{"id": ..., "title": ..., "text": ...} per line)')
    st = p.stat()
    key = (str(p), st.st_mtime, st.st_size)
    with _lock:
        index = _indexes.get(key)
        if index is None:
            index = _load_or_build(p)
            _indexes[key] = index
        return index
