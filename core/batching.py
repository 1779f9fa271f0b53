"""Opportunistic micro-batching: requests for the same snapshot and method that are ready
together share one ``predict`` call.

There is no timer by default. The first request to arrive schedules a drain task and
goes on; every request the event loop already has in hand (their bytes arrived while
the previous batch was computing) is parsed and queued before that task runs, so
under load batches form by themselves, and a lone request waits one loop iteration.
A batch holds one snapshot: a swap mid-queue never mixes versions. If a batched call
raises, its requests are retried one by one, so one bad request fails alone.
Event-loop thread only.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

Predict = Callable[[np.ndarray], Any]


class Batcher:
    """Batches for one (snapshot, method)."""

    def __init__(
        self,
        fn: Predict,
        *,
        max_rows: int = 256,
        inline_rows: int = 256,
        wait_s: float = 0.0,
        observe: Callable[[int, int], None] | None = None,
    ) -> None:
        self._fn = fn
        self.max_rows = max_rows
        self.inline_rows = inline_rows
        self.wait_s = wait_s
        self._observe = observe
        self._pending: deque[tuple[np.ndarray, asyncio.Future[Any]]] = deque()
        self._draining = False

    @property
    def idle(self) -> bool:
        return not self._draining and not self._pending

    async def submit(self, X: np.ndarray) -> Any:
        """This request's rows of the prediction (raises what the model raised on them)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((X, future))
        if not self._draining:
            self._draining = True
            loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            if self.wait_s > 0:
                await asyncio.sleep(self.wait_s)
            while self._pending:
                await self._run(self._take())
        finally:
            self._draining = False

    def _take(self) -> list[tuple[np.ndarray, asyncio.Future[Any]]]:
        batch = [self._pending.popleft()]
        rows = len(batch[0][0])
        while self._pending and rows + len(self._pending[0][0]) <= self.max_rows:
            item = self._pending.popleft()
            batch.append(item)
            rows += len(item[0])
        return batch

    async def _call(self, X: np.ndarray) -> Any:
        if len(X) <= self.inline_rows:
            return self._fn(X)  # small: inline is faster than a thread hop
        return await asyncio.to_thread(self._fn, X)

    async def _run(self, batch: list[tuple[np.ndarray, asyncio.Future[Any]]]) -> None:
        live = [(x, f) for x, f in batch if not f.done()]  # a cancelled request needs no answer
        if not live:
            return
        X = live[0][0] if len(live) == 1 else np.concatenate([x for x, _ in live])
        if self._observe is not None:
            self._observe(len(live), len(X))
        try:
            result = await self._call(X)
        except Exception as exc:  # the model raised: find whose rows did it
            if len(live) == 1:
                live[0][1].set_exception(exc)
                return
            for x, future in live:
                try:
                    answer = await self._call(x)
                except Exception as own:  # this request's own rows make the model raise
                    if not future.done():
                        future.set_exception(own)
                else:
                    if not future.done():
                        future.set_result(answer)
            return
        if len(live) == 1:
            live[0][1].set_result(result)
            return
        offset = 0
        for x, future in live:
            if not future.done():
                future.set_result(result[offset : offset + len(x)])
            offset += len(x)


class BatchPool:
    """One Batcher per (snapshot, method); idle batchers of retired snapshots are dropped."""

    def __init__(self, *, max_rows: int, wait_s: float, observe: Callable[[int, int], None] | None = None) -> None:
        self.max_rows = max_rows
        self.wait_s = wait_s
        self._observe = observe
        self._batchers: dict[tuple[int, str], tuple[object, Batcher]] = {}

    def batcher(self, snapshot: object, method: str, fn: Predict) -> Batcher:
        key = (id(snapshot), method)
        entry = self._batchers.get(key)
        if entry is not None and entry[0] is snapshot:
            return entry[1]
        if len(self._batchers) > 32:
            self._batchers = {k: v for k, v in self._batchers.items() if not v[1].idle}
        batcher = Batcher(fn, max_rows=self.max_rows, wait_s=self.wait_s, observe=self._observe)
        self._batchers[key] = (snapshot, batcher)  # holding the snapshot keeps its id unique
        return batcher
