"""The search env's tools: ``search(query, k)``, ``open(doc_id)`` and ``submit(answer)``."""

from __future__ import annotations

from pathlib import Path

import anyio
from pydantic import BaseModel, ConfigDict

from traject.environments.search.corpus import SearchIndex, get_index
from traject.tools.base import ToolOutput
from traject.tools.context import ToolContext
from traject.tools.decorator import tool
from traject.tools.toolset import Toolset
from traject.types import InfraError

BUILTIN_CORPUS = Path(__file__).parent / "data" / "corpus.jsonl"


class SearchTaskData(BaseModel):
    """``Task.data`` of a search task: where its corpus is, and the gold answers."""

    model_config = ConfigDict(extra="allow")

    corpus: str = str(BUILTIN_CORPUS)
    question: str = ""
    answers: list[str] = []
    supporting: list[str] = []


class SearchToolset(Toolset):
    def __init__(self, *, max_k: int = 10, open_chars: int = 4000) -> None:
        self.max_k = max_k
        self.open_chars = open_chars
        self.index: SearchIndex | None = None

    async def setup(self, ctx: ToolContext) -> None:
        data = SearchTaskData.model_validate(ctx.task.data)
        try:
            self.index = await anyio.to_thread.run_sync(get_index, data.corpus)
        except (FileNotFoundError, OSError) as exc:
            raise InfraError(f"task {ctx.task.id!r}: cannot load its corpus: {exc}") from exc

    @tool
    async def search(self, query: str, k: int = 5) -> ToolOutput:
        """Search the document collection (BM25 keyword search) and see the best matches.

        Args:
            query: Keywords to search for.
            k: How many results to show (1 to 10).
        """
        assert self.index is not None
        k = max(1, min(int(k), self.max_k))
        hits = await anyio.to_thread.run_sync(self.index.search, query, k)
        if not hits:
            return ToolOutput(content="No documents match that query. Try other keywords.",
                              metadata={"hits": []})
        lines = [f"[{h.id}] {h.title}\n{h.snippet}" for h in hits]
        return ToolOutput(content="\n\n".join(lines), metadata={"hits": [h.id for h in hits]})

    @tool
    async def open(self, doc_id: str) -> ToolOutput:
        """Read one document in full.

        Args:
            doc_id: The document's id, as shown in brackets in search results.
        """
        assert self.index is not None
        doc = self.index.by_id.get(doc_id.strip().strip("[]"))
        if doc is None:
            return ToolOutput(content=f"Error: no document with id {doc_id!r}. Use an id from the search results.",
                              is_error=True)
        text = doc.text if len(doc.text) <= self.open_chars else doc.text[:self.open_chars] + " ... (cut)"
        return ToolOutput(content=f"{doc.title}\n\n{text}", metadata={"opened": doc.id})

    @tool
    async def submit(self, answer: str) -> ToolOutput:
        """Give your final answer: a short phrase (a name, a place, a number). This ends the task.

        Args:
            answer: The answer, as short as possible.
        """
        return ToolOutput(content="Submitted.", done=True, final_answer=answer.strip())
