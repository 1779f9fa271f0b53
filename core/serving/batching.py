"""Opportunistic micro-batching, with the model's code on worker threads, off the event loop.

Requests for the same snapshot and method that are ready together share one call. There
is no timer by default: the first request schedules a drain task and goes on; every
request the loop already has in hand is queued before that task runs, and while a batch
computes on its model's worker thread the next one fills, so under load batches form by
themselves. A batch holds one snapshot: a swap mid-queue never mixes versions. A batched
call that raises, or answers another number of rows, is retried one request at a time:
one bad request fails alone and no request gets another's rows. Each model has its own
worker threads (core.serving.pool; unless ``inline_s``, below): a saturated or hung model leaves health checks,
metrics and other models answering; a request past the timeout gets PredictTimeout.

Regrouping: requests that miss a batch by a hair (they arrive while it computes) form
the next one, and under steady concurrency the two groups alternate for good, each paying
a model call (16 clients answered as 15 and 1). So a batch first waits, at most as long
as the last call took and ``regroup_s`` (1 ms), for the requests about to join it: when
its oldest request waited while the last batch computed, for that batch's too (its
clients are about to come back); when it came just after, for as many as the recent
batches had (the stragglers); a request alone goes at once. Waiting one call's time at
most is never slower than the call it saves. ``wait_s`` (a fixed wait) replaces it.

The hand-off: the loop's thread waits for a batch on its worker thread, blocked (holding
no GIL), for up to ``hand_off_s`` (2 ms): the two threads do not take the GIL from each
other at every system call, and the answer needs no trip through the loop. A batcher
whose last call took longer is awaited at once.

Accounting once per batch: ``account`` (the inference plane's) is called once per answer
on the loop's thread, before the answers are handed out, with the requests' tickets (None:
timed out or gone, counted as what it got), row counts, rows, answer and when it came
back; what it returns runs as the loop's next callback; what it raises is only logged.

On the loop, once proven cheap (``inline_s``: MODELSWAP_BATCH_INLINE_MS, 1 ms): a call
that the recent calls' costs put within ``inline_s`` is made on the loop's own thread, as
a bare Starlette app makes it, once none of the batcher's last ``proof`` calls
(32, the first on the worker threads) took over STALL times ``inline_s`` (4 ms). One
request at a time (the batcher idle after batches of one, nothing else for the loop to
run) is answered in its own task: no queue, future, drain task or trip through the loop. Only a call
whose cost its rows do not predict holds the loop (a cheap model that suddenly takes
seconds), and once: a call there that runs over 4 ms of its thread's CPU, or holds it
over HOLD_S (50 ms, hardening's bound on a health check's delay), ends calls there for
every batcher of that version, with a warning. Another call there over 4 ms waited (on
I/O, on another thread holding the GIL): the batcher is proven again. Pauses of the
machine and the collector are left out. ``inline_s`` is only for numbers-only signatures.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from modelswap.core.errors import PredictTimeout
from modelswap.core.serving import native_threads, pauses
from modelswap.core.serving.threads import ModelThreads, compute

logger = logging.getLogger(__name__)

Predict = Callable[[np.ndarray], Any]
Ticket = tuple[float, str]  # a request's start (time.perf_counter) and its request id
# account(tickets, sizes, X, answer, answered) -> what runs once the answers are out (see the doc)
Account = Callable[[list[Ticket | None], list[int], np.ndarray, Any, float], Callable[[], None] | None]
NO_TICKET: Ticket = (0.0, "")
HAND_OFF_S = 0.002
REGROUP_S = 0.001  # the longest a smaller batch waits for the requests of the batches before it
PROOF = 32  # calls in a row within STALL x inline_s before any is made on the loop
STALL = 4  # a call over this many times inline_s: a stall (on the loop, in CPU time: ends calls there)
HOLD_S = 0.05  # a call on the loop that holds it longer, CPU or not, ends calls there too
RECENT = 8  # the last batches: their sizes say how many requests are about to come, their costs bound the next call


class WrongAnswerCount(RuntimeError):
    """The model answered a different number of rows than it was asked."""


class Batcher:
    """Batches for one (snapshot, method), computed on ``executor``."""

    def __init__(
        self,
        fn: Predict,
        executor: ModelThreads,
        *,
        max_rows: int = 256,
        wait_s: float = 0.0,
        timeout_s: float = 30.0,
        hand_off_s: float = HAND_OFF_S,
        inline_s: float = 0.0,
        proof: int = PROOF,
        threads: int | None = None,
        observe: Callable[[int, int], None] | None = None,
        account: Account | None = None,
        regroup_s: float = REGROUP_S,
        name: str = "",
        on_stall: Callable[[], None] | None = None,
    ) -> None:
        self._fn, self._account, self.threads, self._executor = fn, account, threads, executor
        self.max_rows, self.wait_s, self.timeout_s, self.hand_off_s = max_rows, wait_s, timeout_s, hand_off_s
        self.inline_s, self.proof = inline_s, proof
        # for the warning when a call on the loop stalls it, and who is told (the pool)
        self.name, self._on_stall = name, on_stall
        # the last call within the hand-off?; calls in a row within STALL x inline_s; the
        # last call's seconds; the last calls' (rows, seconds), newest last (see _bound)
        self._fast, self._cheap, self._took = True, 0, 0.0
        self._costs: deque[tuple[int, float]] = deque(maxlen=RECENT)
        self._observe = observe
        self._pending: deque[tuple[np.ndarray, asyncio.Future[Any], Ticket]] = deque()
        self._pending_rows = 0
        self._draining = False
        # Regrouping (see _regroup): the sizes of the last batches, when the last one was
        # answered (loop time) and how long its call took there, and a drain waiting for
        # its group with the number of requests it waits for.
        self.regroup_s = regroup_s
        self._sizes: deque[int] = deque(maxlen=RECENT)
        self._answered_at = float("-inf")
        self._call_s = 0.0
        self._gather: asyncio.Future[None] | None = None
        self._want = 0
        # Deadlines, in submission order (every request gets the same timeout), and the
        # one timer armed for the oldest: a timer per request (asyncio.wait_for) costs a
        # future, a heap push, a cancel and an extra trip through the loop per request.
        self._deadlines: deque[tuple[float, asyncio.Future[Any]]] = deque()
        self._alarm: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def idle(self) -> bool:
        return not self._draining and not self._pending

    async def submit(self, X: np.ndarray, ticket: Ticket = NO_TICKET) -> Any:
        """This request's rows of the prediction (raises what the model raised on them,
        PredictTimeout after ``timeout_s``); ``ticket`` goes to the batch's accounting."""
        loop = asyncio.get_running_loop()
        if not self._draining and self._alone(loop, len(X), ticket[0]):
            return self._solo(loop, X, ticket)  # in this request's own task, without suspending (see _alone)
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((X, future, ticket))
        self._pending_rows += len(X)
        self._watch(loop, future)
        gather = self._gather
        if gather is not None and (len(self._pending) >= self._want or self._pending_rows >= self.max_rows):
            self._gather = None
            _settle(gather)
        if not self._draining:
            self._draining = True
            loop.create_task(self._drain())
        return await future

    def _on_loop(self, rows: int) -> bool:
        """Whether a call of ``rows`` rows is made on the loop's thread (see the module's doc)."""
        inline_s = self.inline_s
        return inline_s > 0 and self._cheap >= self.proof and self._bound(rows) <= inline_s

    def _bound(self, rows: int) -> float:
        """What a call of ``rows`` rows should take, from the recent calls. A call costs a
        fixed part and a part per row, so one of n rows that took t bounds any call of up
        to n rows by t, and one of r > n rows by t x r / n: the tightest of the recent
        calls' bounds, and never less than the last call took when ``rows`` is more than
        it had. A batch of 40 after a request alone is bounded by the last batch of 40,
        not by 40 times the lone request's cost (with a cost that is mostly the fixed
        part, that sent the batch after every lone request to the worker threads)."""
        costs = self._costs
        if not costs:
            return 0.0  # no call yet: _cheap is 0, the first calls go to the workers
        last_rows, last_took = costs[-1]
        if rows <= last_rows:
            return last_took
        return max(last_took, min(took if rows <= n else took * rows / n for n, took in costs))

    def _alone(self, loop: asyncio.AbstractEventLoop, rows: int, arrived: float) -> bool:
        """Whether a request that finds nothing queued is answered alone, in its own task: a
        call on the loop after batches of one request, nothing else ready to run there (no
        request about to join; asyncio's ready queue, another loop: never), and no group to
        wait for (regroup_target's, as if it were queued alone)."""
        return (
            not self._pending and self.wait_s == 0 and self._on_loop(rows) and max(self._sizes, default=1) == 1
            and not getattr(loop, "_ready", True)
            and (self.regroup_s == 0 or not self._wanted(arrived, 1, rows, time.perf_counter()))
        )  # fmt: skip

    def _solo(self, loop: asyncio.AbstractEventLoop, X: np.ndarray, ticket: Ticket) -> Any:
        """A request answered alone (``_alone``): the batch of one that ``_drain`` would make
        of it, without its queue, future, drain task and coroutines."""
        if self._observe is not None:
            self._observe(1, len(X))
        began = time.perf_counter()
        result = self._inline(X)  # raises what the model raised: as a batch of one, not counted as answered
        later = self._accounted([ticket], [len(X)], X, result)
        if later is not None:
            loop.call_soon(_guarded, later)
        self._finished(began, 1)
        return result

    def _watch(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]) -> None:
        """Give ``future`` its deadline; answered ones are dropped from the front as they go."""
        if loop is not self._loop:  # a new event loop (tests): the old one's timer is gone
            self._loop, self._alarm = loop, None
            self._deadlines.clear()
        deadlines = self._deadlines
        while deadlines and deadlines[0][1].done():
            deadlines.popleft()
        deadlines.append((loop.time() + self.timeout_s, future))
        if self._alarm is None:
            self._alarm = loop.call_at(deadlines[0][0], self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        """The oldest deadline is due: every request past its own gets PredictTimeout."""
        self._alarm = None
        now = loop.time()
        deadlines = self._deadlines
        while deadlines and (deadlines[0][1].done() or deadlines[0][0] <= now):
            future = deadlines.popleft()[1]
            if not future.done():
                future.set_exception(timed_out(self.timeout_s))
        if deadlines:
            self._alarm = loop.call_at(deadlines[0][0], self._expire, loop)

    def regroup_target(self, now: float) -> int:
        """How many requests the next batch should wait for (0: none, go now): those
        queued, plus the last batch's when the oldest queued waited while it computed
        (its clients are about to come back); as many as the last batches had when the
        queued came just after it (its stragglers are about to come)."""
        pending = self._pending
        return self._wanted(pending[0][2][0], len(pending), self._pending_rows, now) if pending else 0

    def _wanted(self, arrived: float, queued: int, rows: int, now: float) -> int:
        """regroup_target for ``queued`` requests of ``rows`` rows, the oldest arrived at ``arrived``."""
        if not self._sizes or rows >= self.max_rows:
            return 0
        answered = self._answered_at
        if 0 < arrived < answered:
            want = queued + self._sizes[-1]
        elif now - answered <= self.regroup_s:
            want = max(self._sizes)
        else:  # the last batch is long gone: nobody is about to come
            return 0
        return want if want > queued else 0

    async def _regroup(self) -> None:
        """Wait for the requests about to join the next batch (regroup_target), at most
        as long as the last call took (and ``regroup_s``): see the module's doc."""
        want = self.regroup_target(time.perf_counter())
        if not want:
            return
        loop = asyncio.get_running_loop()
        gather: asyncio.Future[None] = loop.create_future()
        self._gather, self._want = gather, want
        timer = loop.call_later(min(self.regroup_s, self._call_s), _settle, gather)
        try:
            await gather
        finally:
            timer.cancel()
            self._gather = None

    async def _drain(self) -> None:
        try:
            if self.wait_s > 0:
                await asyncio.sleep(self.wait_s)
            while self._pending:
                if self.regroup_s > 0 and self.wait_s == 0:
                    await self._regroup()
                await self._run(self._take())
        finally:
            self._draining = False

    def _take(self) -> list[tuple[np.ndarray, asyncio.Future[Any], Ticket]]:
        batch = [self._pending.popleft()]
        rows = len(batch[0][0])
        while self._pending and rows + len(self._pending[0][0]) <= self.max_rows:
            item = self._pending.popleft()
            batch.append(item)
            rows += len(item[0])
        self._pending_rows -= rows
        return batch

    def _timed(self, X: np.ndarray) -> Any:
        """The model's call, timed where it runs (not counting the loop's delays, nor the
        machine's and the collector's pauses), with its native code held to ``threads``."""
        start, paused = time.perf_counter(), pauses.seconds()  # the thread limits too: on the loop, the loop's time
        answered = False
        try:
            if self.threads is not None:
                native_threads.apply(self.threads)
            result = self._fn(X)
            answered = True
            return result
        finally:
            took = time.perf_counter() - start - (pauses.seconds() - paused)
            self._took, self._fast = took, took <= self.hand_off_s
            rows = max(1, len(X))
            # a call that raised may have stopped at its first row: its time may raise the
            # bound of the calls after it, never lower it
            if answered or took >= self._bound(rows):
                self._costs.append((rows, took))
            self._cheap = self._cheap + 1 if took <= STALL * self.inline_s else 0

    def _work(self, X: np.ndarray) -> Any:
        """One batch where the model runs: the call and its row count checked (an answer
        with the wrong row count raises)."""
        result = self._timed(X)
        if len(result) != len(X):
            raise WrongAnswerCount(f"the model answered {len(result)} rows for {len(X)}")
        return result

    async def _call(self, X: np.ndarray) -> Any:
        """The batch on the model's worker thread, or on the loop once proven cheap (see
        the module's doc)."""
        if self._on_loop(len(X)):
            return self._inline(X)
        hand_off = self.hand_off_s if self._fast else 0.0
        return await compute(self._executor, self._work, X, hand_off_s=hand_off)

    def _inline(self, X: np.ndarray) -> Any:
        """The batch on the loop's own thread; a call that stalls it ends calls there."""
        inline_s, cpu, collected = self.inline_s, time.thread_time(), pauses.collected()
        try:
            return self._work(X)
        finally:
            took = self._took  # this call's, timed in _timed
            ran = time.thread_time() - cpu - (pauses.collected() - collected)  # its own CPU time
            if ran > STALL * inline_s or took > HOLD_S:
                self.inline_s = 0.0
                if self._on_stall is not None:
                    self._on_stall()
                logger.warning(
                    "%s: a call on the event loop took %.1f ms (%.1f ms of CPU, %d rows); "
                    "its calls stay on the worker threads",
                    self.name or "a model", 1000 * took, 1000 * ran, len(X),
                )  # fmt: skip

    def _answer(self, items: list[tuple[np.ndarray, asyncio.Future[Any], Ticket]], X: np.ndarray, result: Any) -> None:
        """Count the batch, hand each request still waiting its rows of ``result`` (the
        answer to ``X``, their rows in order), then queue what the accounting left for
        after (see the module's doc)."""
        tickets = [None if future.done() else ticket for _, future, ticket in items]  # None: counted as what it got
        later = self._accounted(tickets, [len(x) for x, _, _ in items], X, result)
        whole, offset = len(items) == 1, 0
        for (x, future, _), ticket in zip(items, tickets, strict=True):
            if ticket is not None:
                future.set_result(result if whole else result[offset : offset + len(x)])
            offset += len(x)
        if later is not None:  # the future's loop: asyncio.get_running_loop() is a getpid() call
            items[0][1].get_loop().call_soon(_guarded, later)

    async def _run(self, batch: list[tuple[np.ndarray, asyncio.Future[Any], Ticket]]) -> None:
        live = [item for item in batch if not item[1].done()]  # a cancelled or timed-out request needs no answer
        if not live:
            return
        X = live[0][0] if len(live) == 1 else np.concatenate([x for x, _, _ in live])
        if self._observe is not None:
            self._observe(len(live), len(X))
        began = time.perf_counter()
        try:
            result = await self._call(X)
        except Exception as exc:  # the model raised or miscounted: find whose rows did it
            if len(live) == 1:
                _settle(live[0][1], error=exc)
                return
            for item in live:
                x, future, _ = item
                if future.done():
                    continue  # timed out or gone meanwhile: no call for nobody
                try:
                    own = await self._call(x)
                except Exception as error:  # this request's own rows make the model fail
                    _settle(future, error=error)
                else:
                    self._answer([item], x, own)
            return
        self._answer(live, X, result)
        self._finished(began, len(live))

    def _accounted(
        self, tickets: list[Ticket | None], sizes: list[int], X: np.ndarray, result: Any
    ) -> Callable[[], None] | None:
        """The batch's accounting, before its answers go out; what it returns runs after them."""
        if self._account is None:
            return None
        later: Callable[[], None] | None = _guarded(self._account, tickets, sizes, X, result, time.perf_counter())
        return later

    def _finished(self, began: float, requests: int) -> None:
        """A call that began at ``began`` answered ``requests`` requests (what regrouping looks at)."""
        self._answered_at = time.perf_counter()
        self._call_s = self._answered_at - began
        self._sizes.append(requests)


def _guarded(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` for the accounting: what it raises is logged (counting must never fail
    a request the model answered), and None returned."""
    try:
        return fn(*args)
    except Exception:
        logger.exception("accounting a batch failed")
        return None


def timed_out(timeout_s: float) -> PredictTimeout:
    return PredictTimeout(f"the model did not answer within {timeout_s:g}s")


def _settle(future: asyncio.Future[Any], *, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():
        return  # its request timed out or was cancelled meanwhile
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
