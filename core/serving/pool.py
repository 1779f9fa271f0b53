"""The batchers of one serving process: one per (snapshot, method), each model on worker
threads of its own (a saturated or hung model leaves the others answering), and the stall
ban that keeps every batcher of a version off the event loop once a call there stalled it
(core.serving.batching says how a batcher works)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np

from modelswap.core.serving import native_threads
from modelswap.core.serving.batching import HAND_OFF_S, Account, Batcher, Predict, timed_out
from modelswap.core.serving.threads import ModelThreads, compute

THREADS_PER_MODEL = 2  # the stable and the canary variant can compute at once


class BatchPool:
    """One Batcher per (snapshot, method); idle batchers of retired snapshots are dropped.
    Each model gets its own worker threads (created on first use); ``close`` joins them."""

    def __init__(
        self,
        *,
        max_rows: int,
        wait_s: float,
        timeout_s: float = 30.0,
        hand_off_s: float = HAND_OFF_S,
        inline_s: float = 0.0,
        threads: int | None = None,
        observe: Callable[[int, int], None] | None = None,
    ) -> None:
        self.threads, self.max_rows, self.wait_s, self.timeout_s = threads, max_rows, wait_s, timeout_s
        self.hand_off_s, self.inline_s = hand_off_s, inline_s
        self._observe = observe
        self._batchers: dict[tuple[int, str], tuple[Any, Batcher]] = {}
        self._executors: dict[str, ModelThreads] = {}
        self._stalled: set[tuple[str, str]] = set()  # (model, version): a call on the loop stalled it

    def executor(self, model: str) -> ModelThreads:
        executor = self._executors.get(model)
        if executor is None:
            executor = ModelThreads(THREADS_PER_MODEL, f"predict-{model}")
            self._executors[model] = executor
        return executor

    def batcher(self, snapshot: Any, method: str, fn: Predict, account: Callable[[], Account] | None = None) -> Batcher:
        """The batcher of (``snapshot``, ``method``), made on first use with the accounting
        ``account()`` makes (called then only; later calls return the batcher as it is).
        Its calls may go on the event loop once proven cheap (``inline_s``) only when the
        snapshot's signature takes numbers alone (text costs by its length, not its rows)
        and no call on the loop has stalled it, in any batcher of this (model, version)."""
        key = (id(snapshot), method)
        entry = self._batchers.get(key)
        if entry is not None and entry[0] is snapshot:
            return entry[1]
        version = (snapshot.model, snapshot.version)
        if len(self._batchers) > 32:
            self._batchers = {k: v for k, v in self._batchers.items() if not v[1].idle}
        batcher = Batcher(
            fn,
            self.executor(snapshot.model),
            max_rows=self.max_rows,
            wait_s=self.wait_s,
            timeout_s=self.timeout_s,
            hand_off_s=self.hand_off_s,
            inline_s=self.inline_s if snapshot.signature.numeric and version not in self._stalled else 0.0,
            threads=self.threads,
            observe=self._observe,
            account=account() if account is not None else None,
            name=f"{snapshot.model} {snapshot.version} {method}",
            on_stall=lambda: self._stall(version),
        )
        self._batchers[key] = (snapshot, batcher)  # holding the snapshot keeps its id unique
        return batcher

    def _stall(self, version: tuple[str, str]) -> None:
        """A call on the loop stalled it: every batcher of that (model, version), now and
        later (a batcher dropped while idle, another method, a reload), calls on its threads."""
        self._stalled.add(version)
        for snapshot, batcher in self._batchers.values():
            if (snapshot.model, snapshot.version) == version:
                batcher.inline_s = 0.0

    async def call(self, model: str, fn: Predict, X: np.ndarray) -> Any:
        """One unbatched call on the model's worker threads (a v2 request's extra outputs)."""
        threads = self.threads

        def limited(X: np.ndarray) -> Any:
            if threads is not None:
                native_threads.apply(threads)
            return fn(X)

        try:
            work = compute(self.executor(model), limited, X, hand_off_s=self.hand_off_s)
            return await asyncio.wait_for(work, self.timeout_s)
        except asyncio.TimeoutError:
            raise timed_out(self.timeout_s) from None

    def close(self) -> None:
        """Stop taking work and join every worker thread (a call still computing is
        waited for: a thread cannot be interrupted)."""
        for executor in self._executors.values():
            executor.close()
        self._executors.clear()
