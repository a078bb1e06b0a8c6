"""Search QA tasks: the built-in two-hop set, NQ-open JSONL and HotpotQA-style files.

* NQ-open: JSONL, ``{"question": ..., "answer": [...]}`` per line; the corpus (e.g. a
  Wikipedia passage dump as JSONL ``id, title, text``) is given with ``corpus=``.
* HotpotQA: the official JSON list, or JSONL, with ``_id, question, answer, context,
  supporting_facts``. Without ``corpus=``, the paragraphs in the questions' ``context``
  (``[[title, [sentence, ...]], ...]``) become the corpus, written once next to the file.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from traject.environments.search.corpus import cache_dir
from traject.environments.search.tools import BUILTIN_CORPUS
from traject.types import Task

BUILTIN_QUESTIONS = Path(__file__).parent / "data" / "questions.jsonl"
PROMPT = ("Answer the question using the document collection: `search` it, `open` documents to read them, "
          "then `submit` a short answer.\n\nQuestion: {question}")


class QAFileError(ValueError):
    pass


def _read_records(path: Path, expected: str) -> list[tuple[int, Any]]:
    """Records of a JSON list or a JSONL file, with their line (JSONL) or index (JSON) number."""
    if not path.is_file():
        raise QAFileError(f"{path}: file not found (expected {expected})")
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise QAFileError(f"{path}: not valid JSON at line {exc.lineno} (expected {expected})") from exc
        return list(enumerate(items))
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((n, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise QAFileError(f"{path}, line {n}: not valid JSON (expected {expected}): {exc.msg}") from exc
    return out


def _answers(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(a, str) for a in value):
        return list(value)
    return None


RUBRIC = ("The question was: {question}\nCorrect answers: {answers}\nScore 1 if the assistant's final answer (its "
          "`submit` call, else its last message) means the same as a correct answer, ignoring wording, case and "
          "extra detail that does not change it; score 0 for a different entity or number, a hedge between "
          "several answers, or no answer.")


def qa_task(task_id: str, question: str, answers: list[str], corpus: Path, *,
            supporting: list[str] | None = None, metadata: dict[str, Any] | None = None) -> Task:
    return Task(id=task_id, prompt=PROMPT.format(question=question), answer=answers,
                data={"corpus": str(corpus), "question": question, "answers": answers,
                      "supporting": supporting or [],
                      "rubric": RUBRIC.format(question=question, answers="; ".join(answers))},
                metadata=metadata or {})


def _check_corpus(corpus: str | Path | None, source: Path) -> Path:
    if corpus is None:
        raise QAFileError(f"{source}: these questions need a corpus: pass corpus= a JSONL file of "
                          '{"id", "title", "text"} documents (e.g. a Wikipedia passage dump)')
    p = Path(corpus)
    if not p.is_file():
        raise QAFileError(f"{p}: corpus file not found (expected JSONL with id, title, text per line)")
    return p


def load_nq_open(path: str | Path, *, corpus: str | Path | None, n: int | None = None) -> list[Task]:
    source = Path(path)
    records = _read_records(source, 'NQ-open JSONL: {"question": ..., "answer": [...]} per line')
    corpus_path = _check_corpus(corpus, source)
    tasks = []
    for i, (where, rec) in enumerate(records[:n] if n is not None else records):
        if not isinstance(rec, dict) or not isinstance(rec.get("question"), str):
            raise QAFileError(f"{source}, record {where}: expected an object with a string 'question'")
        answers = _answers(rec.get("answer", rec.get("answers")))
        if answers is None:
            raise QAFileError(f"{source}, record {where}: expected 'answer' to be a string or a list of strings")
        tasks.append(qa_task(f"nq-{i}", rec["question"], answers, corpus_path,
                             metadata={"source": "nq_open", "record": where}))
    return tasks


def _hotpot_corpus(source: Path, records: list[tuple[int, Any]]) -> Path:
    """The paragraphs of the records' contexts as a corpus JSONL (one document per title)."""
    docs: dict[str, str] = {}
    for where, rec in records:
        context = rec.get("context") if isinstance(rec, dict) else None
        if not isinstance(context, list):
            raise QAFileError(f"{source}, record {where}: no 'context' list of [title, [sentences]] to build a "
                              "corpus from; pass corpus= instead")
        for para in context:
            if (not isinstance(para, list) or len(para) != 2 or not isinstance(para[0], str)
                    or not isinstance(para[1], list)):
                raise QAFileError(f"{source}, record {where}: a context entry is not [title, [sentences]]")
            docs.setdefault(para[0], "".join(str(s) for s in para[1]).strip())
    lines = "".join(json.dumps({"id": t, "title": t, "text": x}, ensure_ascii=False) + "\n" for t, x in docs.items())
    for target in (source.with_name(source.name + ".corpus.jsonl"),
                   cache_dir() / "search" / f"{source.stem}.corpus.jsonl"):
        try:
            if target.is_file() and target.read_text(encoding="utf-8") == lines:
                return target
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=target.parent, delete=False, encoding="utf-8") as f:
                f.write(lines)
            Path(f.name).replace(target)
            return target
        except OSError:
            continue
    raise QAFileError(f"{source}: could not write the corpus built from its contexts anywhere")


def load_hotpotqa(path: str | Path, *, corpus: str | Path | None = None, n: int | None = None) -> list[Task]:
    source = Path(path)
    records = _read_records(source, "HotpotQA: a JSON list (or JSONL) of {_id, question, answer, context, ...}")
    records = records[:n] if n is not None else records
    corpus_path = _check_corpus(corpus, source) if corpus is not None else _hotpot_corpus(source, records)
    tasks = []
    for i, (where, rec) in enumerate(records):
        if not isinstance(rec, dict) or not isinstance(rec.get("question"), str):
            raise QAFileError(f"{source}, record {where}: expected an object with a string 'question'")
        answers = _answers(rec.get("answer"))
        if answers is None:
            raise QAFileError(f"{source}, record {where}: expected 'answer' to be a string")
        facts = rec.get("supporting_facts") or []
        supporting = sorted({f[0] for f in facts if isinstance(f, list) and f and isinstance(f[0], str)})
        tasks.append(qa_task(f"hotpot-{rec.get('_id', i)}", rec["question"], answers, corpus_path,
                             supporting=supporting,
                             metadata={"source": "hotpotqa", "record": where, "type": rec.get("type"),
                                       "level": rec.get("level")}))
    return tasks


def builtin_search_tasks(split: str = "test", n: int | None = None, seed: int = 0) -> list[Task]:
    """The built-in two-hop questions over the built-in corpus (train: even, test: odd, all)."""
    records = _read_records(BUILTIN_QUESTIONS, "the built-in questions")
    if split in ("train", "test"):
        records = [r for i, r in enumerate(records) if (i % 2 == 0) == (split == "train")]
    elif split != "all":
        raise ValueError(f"unknown split {split!r} for the built-in search tasks; use train, test or all")
    tasks = [qa_task(rec["id"], rec["question"], rec["answers"], BUILTIN_CORPUS, supporting=rec["supporting"],
                     metadata={"source": "builtin", "split": split}) for _, rec in records]
    return tasks if n is None else tasks[:n]
