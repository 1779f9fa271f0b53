"""The inference plane: one request routed, checked, batched, predicted and accounted, free of HTTP.

Every protocol (native v1, Open Inference Protocol v2, MLflow's ``/invocations``) parses
its body into a :class:`~modelswap.core.schema.inputs.Table` and renders the
:class:`Answer`; everything between is here, once:

1. the target: the model's slot, and the pinned version if the request names one (an
   alias is looked up in the store, on a thread);
2. the snapshot: the pinned version's, or the routed one (stable, or the canary for its
   share of traffic, sticky per routing key);
3. the rows checked against that snapshot's signature (a refusal is counted against the
   version as a client error: a deploy that breaks clients shows);
4. the batch: the request joins its snapshot and method's batcher (core.serving.batching)
   and the model runs on its worker thread (or, once proven cheap on numbers, on the
   event loop's);
5. the accounting, once per batch (on the event loop's thread, for the requests its
   answer goes to: a request is counted once, as what it got), the Prometheus part
   before the answers are handed out and the rest just after:
   ``modelswap_predictions_total`` and the latency histogram, the slot's per-variant
   counts (the canary guard), the shadow's copy of stable's requests, and one monitoring
   hand-over per batch (its rows, answer, and each request's latency and id: counted,
   logged and kept for feedback as the requests it holds). Failures
   (timeouts, the model raising) are counted per request where they surface.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from modelswap.core.delivery.shadow_runner import ShadowRunner
from modelswap.core.errors import InvalidInput, ModelNotFound, PredictionFailed, PredictTimeout
from modelswap.core.metrics import Metrics
from modelswap.core.monitoring.counts import Batch, Observation
from modelswap.core.monitoring.monitor import Monitor
from modelswap.core.schema.inputs import Table, prepare
from modelswap.core.schema.signature import Signature
from modelswap.core.serving.batching import Account, Ticket
from modelswap.core.serving.pool import BatchPool
from modelswap.core.serving.slots import ModelSlot, Serving
from modelswap.core.serving.snapshot import STABLE, Snapshot
from modelswap.core.settings import Settings
from modelswap.core.store.aliases import resolve, validate_ref
from modelswap.core.store.ids import is_version_id
from modelswap.core.store.kernel import Kernel

logger = logging.getLogger("modelswap.predict")


class Target(NamedTuple):
    """Where a request goes: a served model's slot, and a pinned version id (or None: routed).
    (Named tuples: built per request, they cost a fraction of a frozen dataclass.)"""

    slot: ModelSlot
    version: str | None = None


class Answer(NamedTuple):
    """What the model answered one request: the snapshot that answered, the answer for the
    request's rows as the estimator returned it (usually an ndarray), and those rows."""

    snapshot: Snapshot
    result: Any
    rows: np.ndarray


def failure(exc: Exception) -> str:
    """What a client is told of a model's failure: the exception's type (its message may
    hold anything), or, for an answer the server refused (core.serving.snapshot), why."""
    return exc.message if isinstance(exc, PredictionFailed) else type(exc).__name__


class Inference:
    """The inference plane of one serving process (see the module's doc)."""

    def __init__(
        self,
        store: Kernel,
        serving: Serving,
        batching: BatchPool,
        *,
        settings: Settings,
        metrics: Metrics,
        monitor: Monitor,
        shadows: ShadowRunner,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.serving = serving
        self.batching = batching
        self.settings = settings
        self.metrics = metrics
        self.monitor = monitor
        self.shadows = shadows
        self.clock = clock

    # -- 1. the target ---------------------------------------------------------------
    async def target(self, model: str, version: str | None = None) -> Target:
        """The slot of ``model`` (ModelNotFound if not served) and, for a pinned request,
        ``version`` as an id (an alias is looked up in the store, on a thread)."""
        slot = self.serving.slot(model)
        if version is None or is_version_id(version):
            return Target(slot, version)
        alias = validate_ref(version)
        return Target(slot, await asyncio.to_thread(resolve, self.store, model, alias))

    def default_model(self) -> str:
        """The model ``/predict`` and ``/invocations`` serve: MODELSWAP_DEFAULT_MODEL, or the only one."""
        if self.settings.default_model:
            return self.settings.default_model
        if len(self.serving.slots) == 1:
            return next(iter(self.serving.slots))
        raise ModelNotFound(
            f"POST /predict needs MODELSWAP_DEFAULT_MODEL: this server has {len(self.serving.slots)} models"
        )

    # -- 2-5. one request ------------------------------------------------------------
    async def predict(
        self,
        target: Target,
        table: Table | Callable[[Signature], Table],
        method: str = "predict",
        *,
        routing_key: str | None = None,
        request_id: str = "",
        start: float | None = None,
    ) -> Answer:
        """The model's answer to ``table`` by ``method``; ``start`` (time.perf_counter) is
        when the request arrived, for its latency. InvalidInput for rows the signature
        refuses or a method the version lacks, PredictTimeout, PredictionFailed. ``table``
        may be a function of the answering version's signature (v2 names tensors after
        its columns)."""
        start = time.perf_counter() if start is None else start
        slot = target.slot
        if target.version is None:
            snap = slot.route(routing_key)  # 2
        else:  # a thread only for a version that must be loaded
            ready = slot.pinned_ready(target.version)
            snap = ready if ready is not None else await asyncio.to_thread(slot.pinned, target.version)
        X = self.prepare(snap, table if isinstance(table, Table) else table(snap.signature))  # 3
        fn = snap.methods.get(method)
        if fn is None:
            raise InvalidInput(f"{snap.model} {snap.version} does not support {method!r}")
        batcher = self.batching.batcher(snap, method, fn, lambda: self._accountant(slot, snap, method))
        try:
            result = await batcher.submit(X, (start, request_id))  # 4, 5
        except PredictTimeout:
            self._failed(slot, snap, "timeout", "timeout")
            logger.warning("predict timed out model=%s version=%s variant=%s", snap.model, snap.version, snap.variant)
            raise
        except Exception as exc:  # the model's own code failed on valid input
            self._failed(slot, snap, "error", "server")
            logger.warning(
                "predict failed model=%s version=%s variant=%s rows=%d: %s: %s",
                snap.model, snap.version, snap.variant, len(X), type(exc).__name__, exc,
            )  # fmt: skip
            raise PredictionFailed(f"{snap.model} {snap.version} failed to predict: {failure(exc)}") from exc
        return Answer(snap, result, X)

    async def also(self, answer: Answer, method: str) -> Any:
        """Another method's answer on the same rows (v2's further outputs): one unbatched
        call on the model's worker threads, not counted again."""
        snap = answer.snapshot
        fn = snap.methods.get(method)
        if fn is None:
            raise InvalidInput(f"{snap.model} {snap.version} does not support {method!r}")
        try:
            return await self.batching.call(snap.model, fn, answer.rows)
        except PredictTimeout:
            raise
        except Exception as exc:  # the model's own code failed on valid input
            raise PredictionFailed(f"{snap.model} {snap.version} failed in {method}: {failure(exc)}") from exc

    def prepare(self, snap: Snapshot, table: Table) -> np.ndarray:
        """The request checked against the snapshot's signature (errors name the version;
        monitoring counts them against it)."""
        settings = self.settings
        try:
            return prepare(snap.signature, table, max_rows=settings.max_rows, extra=settings.extra_columns)
        except InvalidInput as exc:
            self.monitor.failure(snap.model, snap.version, snap.variant, "client")
            raise InvalidInput(f"{snap.model} {snap.version}: {exc.message}") from exc

    # -- accounting --------------------------------------------------------------------
    def _failed(self, slot: ModelSlot, snap: Snapshot, outcome: str, kind: str) -> None:
        self.metrics.prediction(snap.model, snap.version, snap.variant, outcome, None)
        slot.record(snap, ok=False)
        self.monitor.failure(snap.model, snap.version, snap.variant, kind)

    def _accountant(self, slot: ModelSlot, snap: Snapshot, method: str) -> Account:
        """The accounting of one batcher's batches (called once per batch on the event
        loop's thread before the answers are handed out; what it returns runs just after;
        made once per batcher)."""
        metrics, monitor, shadows, clock = self.metrics, self.monitor, self.shadows, self.clock
        model, version, variant = snap.model, snap.version, snap.variant
        output = snap.signature.output
        classes = output.classes if output is not None else None
        debug = logger.isEnabledFor(logging.DEBUG)

        def account(
            tickets: list[Ticket | None], sizes: list[int], X: np.ndarray, result: Any, now: float
        ) -> Callable[[], None] | None:
            latencies = [now - ticket[0] for ticket in tickets if ticket is not None]
            if not latencies:
                return None
            metrics.answered(model, version, variant, latencies)  # on /metrics before the answer leaves
            slot.record_answered(snap, len(latencies))
            return functools.partial(hand_over, tickets, sizes, X, result, now, latencies)

        def hand_over(
            tickets: list[Ticket | None], sizes: list[int], X: np.ndarray, result: Any, now: float,
            latencies: list[float],
        ) -> None:  # fmt: skip
            """Monitoring's and the shadow's part, once the answers are out."""
            shadow = slot.shadow if variant == STABLE else None
            at = clock()
            everyone = len(latencies) == len(tickets)
            if everyone:  # the usual case: the batch goes to monitoring as it was computed, in one hand-over
                # Tuples, not lists: the collector stops tracking a tuple of numbers or strings
                # once it has seen it, so a batch waiting for the tick is one object for each
                # collection to walk until then, not four.
                ids = tuple([ticket[1] for ticket in tickets])  # type: ignore[index]
                monitor.observe(
                    Batch(model, version, variant, X, result, tuple(latencies), method, classes, ids, tuple(sizes), at)
                )
            if shadow is not None or not everyone:
                whole = len(tickets) == 1
                offset = 0
                for ticket, size in zip(tickets, sizes, strict=True):
                    start, offset = offset, offset + size
                    if ticket is None:
                        continue  # timed out or gone: counted as what it got
                    rows = X if whole else X[start:offset]
                    answer = result if whole else result[start:offset]
                    latency = now - ticket[0]
                    if shadow is not None:  # a copy for the shadow, off the response path
                        shadows.offer(snap, shadow[0], shadow[1].started_at, shadow[1].fraction, rows, answer,
                                      method, latency)  # fmt: skip
                    if not everyone:
                        monitor.observe(
                            Observation(model, version, variant, rows, answer, latency, method, classes, ticket[1], at)
                        )
            if debug:
                logger.debug("predict model=%s version=%s variant=%s requests=%d rows=%d",
                             model, version, variant, len(latencies), len(X))  # fmt: skip

        return account
