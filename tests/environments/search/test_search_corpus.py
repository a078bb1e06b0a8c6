import json
import os
import sys

import pytest

from traject.environments.search.corpus import get_index, read_corpus


def write_corpus(path, docs):
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))


DOCS = [{"id": "a", "title": "Veltrane", "text": "Veltrane Instruments was founded by Ilsa Korrin."},
        {"id": "b", "title": "Korrin", "text": "Ilsa Korrin was born in Marrowby."},
        {"id": "c", "title": "Cats", "text": "Cats sleep a lot."}]


def test_index_is_built_once_and_cached_next_to_the_corpus(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus, DOCS)
    index = get_index(corpus)
    assert index.index_dir == tmp_path / "corpus.jsonl.bm25s"
    meta = json.loads((index.index_dir / "traject_index.json").read_text())
    assert meta["documents"] == 3
    hits = index.search("who founded Veltrane", k=2)
    assert hits[0].id == "a" and all(h.score > 0 for h in hits)
    assert index.search("zzz qqq", k=3) == []  # nothing matches: no zero-score padding
    stamp = os.stat(index.index_dir / "traject_index.json").st_mtime_ns
    # a new process (a cleared in-memory cache) loads the cached index instead of rebuilding it
    from traject.environments.search import corpus as corpus_module

    corpus_module._indexes.clear()
    again = get_index(corpus)
    assert os.stat(again.index_dir / "traject_index.json").st_mtime_ns == stamp
    assert again.search("Marrowby born", k=1)[0].id == "b"
    # a changed corpus is re-indexed
    write_corpus(corpus, DOCS + [{"id": "d", "title": "Dogs", "text": "Dogs bark at Marrowby postmen."}])
    changed = get_index(corpus)
    assert len(changed.docs) == 4 and json.loads((changed.index_dir / "traject_index.json").read_text())["documents"] == 4


def test_unwritable_place_falls_back_to_the_cache_dir(tmp_path, monkeypatch):
    write_corpus(tmp_path / "c.jsonl", DOCS)
    (tmp_path / "c.jsonl.bm25s").write_text("a file where the index folder would go")
    monkeypatch.setenv("TRAJECT_CACHE_DIR", str(tmp_path / "cache"))
    index = get_index(tmp_path / "c.jsonl")
    assert index.index_dir.parent == tmp_path / "cache" / "search"
    assert index.search("Korrin born", k=1)[0].id == "b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.jsonl", "c.jsonl.bm25s", "cache"]  # no debris


def test_malformed_corpus(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(DOCS[0]) + "\n{\"id\": \"x\"}\n")
    with pytest.raises(ValueError, match=r"bad.jsonl, line 2: not a corpus document"):
        read_corpus(bad)
    bad.write_text(json.dumps(DOCS[0]) + "\n" + json.dumps(DOCS[0]) + "\n")
    with pytest.raises(ValueError, match="appears twice"):
        read_corpus(bad)
    with pytest.raises(FileNotFoundError, match="corpus file not found"):
        get_index(tmp_path / "missing.jsonl")


def test_missing_bm25s_names_the_extra(monkeypatch):
    import traject

    monkeypatch.setitem(sys.modules, "bm25s", None)
    with pytest.raises(ImportError, match="`search` extra"):
        traject.make("search")
