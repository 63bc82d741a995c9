"""Group commit: concurrent callers' writes share one transaction, each caller waits for it.

A run (or a batch of outcomes) is acknowledged only after the transaction
holding it commits, so nothing accepted is lost; under load, many share one
commit instead of one each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class BatchWriter(Generic[T, R]):
    """Collects items from concurrent coroutines and writes them with `write(items)` in a thread.

    `write` returns None, or one result per item (in the items' order), which
    is what each item's `submit` returns.

    >>> import asyncio
    >>> batches = []
    >>> async def main():
    ...     writer = BatchWriter(batches.append, max_batch=100)
    ...     await asyncio.gather(*(writer.submit(i) for i in range(5)))
    ...     await writer.close()
    >>> asyncio.run(main())
    >>> sorted(x for b in batches for x in b), len(batches) <= 5
    ([0, 1, 2, 3, 4], True)
    >>> async def doubled():
    ...     writer = BatchWriter(lambda items: [2 * i for i in items])
    ...     return await asyncio.gather(*(writer.submit(i) for i in range(3)))
    >>> asyncio.run(doubled())
    [0, 2, 4]
    """

    def __init__(self, write: Callable[[list[T]], Sequence[R] | None], max_batch: int = 256):
        self.write = write
        self.max_batch = max_batch
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[Any]]] | None = None
        self._task: asyncio.Task[None] | None = None

    def _ensure_started(self) -> asyncio.Queue[tuple[T, asyncio.Future[Any]]]:
        loop = asyncio.get_running_loop()
        if self._task is not None and self._task.get_loop() is not loop:
            self._stop_elsewhere()  # called from another event loop now (a test client's, say)
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._drain(self._queue))
        return self._queue

    def _stop_elsewhere(self) -> None:
        """Let the drain task of another event loop finish what it holds, without waiting for it."""
        assert self._task is not None and self._queue is not None
        other = self._task.get_loop()
        if not other.is_closed():
            other.call_soon_threadsafe(self._queue.put_nowait, (None, None))
        self._task = None
        self._queue = None

    async def submit(self, item: T) -> R | None:
        """Queue `item`; once it is committed, its result (raises what the write raised)."""
        queue = self._ensure_started()
        done: asyncio.Future[R | None] = asyncio.get_running_loop().create_future()
        queue.put_nowait((item, done))
        return await done

    async def _drain(self, queue: asyncio.Queue[tuple[T, asyncio.Future[Any]]]) -> None:
        stopping = False
        while not stopping:
            batch = [await queue.get()]
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            if batch[-1][1] is None:  # the sentinel close() queued last
                batch.pop()
                stopping = True
            if not batch:
                continue
            try:
                results = await asyncio.to_thread(self.write, [item for item, _ in batch])
                if results is not None and len(results) != len(batch):
                    raise RuntimeError(f"write returned {len(results)} results for {len(batch)} items")
            except Exception as e:  # every waiter of this batch learns it failed
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
            else:
                for k, (_, fut) in enumerate(batch):
                    if not fut.done():
                        fut.set_result(None if results is None else results[k])

    async def close(self) -> None:
        """Stop the drain task once everything queued is written."""
        if self._task is None or self._queue is None:
            return
        if self._task.get_loop() is not asyncio.get_running_loop():
            self._stop_elsewhere()
            return
        self._queue.put_nowait((None, None))  # type: ignore[arg-type]
        await self._task
        self._task = None
        self._queue = None
