"""Reading a read model while the writer writes: one snapshot per query, on a small pool of threads.

Each reader thread keeps its own session of the read-model database (SQLite or
PostgreSQL); a query and the position of its read model come from one read
transaction, so an answer is never newer or older than the position it reports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from projections.db import Database, Tx

T = TypeVar("T")


class Readers:
    """A pool of reader threads over one read-model database."""

    def __init__(self, database: Database, threads: int = 2) -> None:
        self.database = database
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None

    def start(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="projections-reader")

    async def stop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, True)

    async def read(self, name: str, query: Callable[[Tx], T]) -> tuple[T, int]:
        """Run ``query``; its answer and the position of read model ``name``, from one snapshot."""
        if self._pool is None:
            raise RuntimeError("projections are not started")
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._read, name, query)

    def _read(self, name: str, query: Callable[[Tx], T]) -> tuple[T, int]:
        session = self.database.thread_session()
        try:
            with session.read() as tx:
                row = tx.fetchone("SELECT seq FROM projection_positions WHERE name = ?", (name,))
                result = query(tx)
        except Exception as exc:
            if self.database.is_transient(exc):
                self.database.drop_thread_session()
            raise
        return result, int(row[0]) if row else 0
