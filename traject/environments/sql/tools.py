"""The SQL env's tools: ``execute_sql`` against the task's database (read-only), and ``submit``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from traject.environments.sql.database import QueryRefused, QueryTimeout, ReadOnlyDatabase
from traject.tools.base import ToolOutput
from traject.tools.context import ToolContext
from traject.tools.decorator import tool
from traject.tools.toolset import Toolset
from traject.types import InfraError


class SQLTaskData(BaseModel):
    """``Task.data`` of a SQL task."""

    model_config = ConfigDict(extra="allow")

    db_path: str
    db_id: str = ""
    question: str = ""
    gold_sql: str | None = None
    evidence: str | None = None


class SQLLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout_s: float = 5.0
    max_rows: int = 50
    max_chars: int = 4000


class SQLToolset(Toolset):
    """One read-only connection per episode, opened at set-up and closed at tear-down."""

    def __init__(self, limits: SQLLimits | None = None) -> None:
        self.limits = limits or SQLLimits()
        self.db: ReadOnlyDatabase | None = None

    async def setup(self, ctx: ToolContext) -> None:
        data = SQLTaskData.model_validate(ctx.task.data)
        try:
            self.db = ReadOnlyDatabase(data.db_path, timeout_s=self.limits.timeout_s,
                                       max_rows=self.limits.max_rows, max_chars=self.limits.max_chars)
        except (FileNotFoundError, OSError) as exc:
            raise InfraError(f"task {ctx.task.id!r}: cannot open its database: {exc}") from exc

    async def teardown(self, ctx: ToolContext) -> None:
        db, self.db = self.db, None
        if db is not None:
            await db.aclose()

    @tool
    async def execute_sql(self, query: str) -> ToolOutput:
        """Run one read-only SQL query (SQLite dialect) against the database and see its result.

        Args:
            query: A single SELECT statement.
        """
        assert self.db is not None
        import sqlite3

        try:
            result = await self.db.execute(query)
        except QueryRefused as exc:
            return ToolOutput(content=f"Error: {exc}", is_error=True, metadata={"refused": True})
        except QueryTimeout as exc:
            return ToolOutput(content=f"Error: {exc}", is_error=True, metadata={"timeout": True})
        except (sqlite3.Error, ValueError) as exc:
            return ToolOutput(content=f"Error: {type(exc).__name__}: {exc}", is_error=True)
        return ToolOutput(content=result.to_text(self.limits.max_chars),
                          metadata={"rows": len(result.rows), "truncated": result.truncated})

    @tool
    async def submit(self, sql: str) -> ToolOutput:
        """Submit your final SQL query: the one whose result answers the question. This ends the task.

        Args:
            sql: The final SQL query.
        """
        return ToolOutput(content="Submitted.", done=True, final_answer=sql.strip())
