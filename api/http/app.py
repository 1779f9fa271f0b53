"""The Starlette application factory: routes, error handlers, and the lifespan that
starts and stops the watcher and heartbeat threads."""

from __future__ import annotations

import gc
import logging
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.routing import Route

from modelswap.api.http import (
    admin,
    canary,
    console,
    delivery,
    health,
    mlflow,
    monitor,
    policy,
    predict,
    reads,
    v2,
    workflows,
)
from modelswap.api.http.auth import needs
from modelswap.api.http.errors import HANDLERS
from modelswap.api.http.lean import LeanInference
from modelswap.api.http.logs import configure_logging
from modelswap.api.http.observe import HttpMetrics
from modelswap.api.http.state import AppState
from modelswap.core.access.admin_token import admin_off, configured_token
from modelswap.core.access.keyring import Keyring
from modelswap.core.access.limiter import FailureLimiter
from modelswap.core.access.roles import ADMIN, DEPLOY, PREDICT, READ, ROLLBACK
from modelswap.core.delivery.driver import Delivery, rollout_view, shadow_view
from modelswap.core.delivery.shadow_runner import ShadowRunner
from modelswap.core.metrics import Metrics, forget_dead_processes
from modelswap.core.monitoring.gauges import MonitorCollector
from modelswap.core.monitoring.monitor import Monitor
from modelswap.core.operations import Operations
from modelswap.core.serving.inference import Inference
from modelswap.core.serving.pool import BatchPool
from modelswap.core.serving.runtime import Runtime
from modelswap.core.serving.slots import Serving
from modelswap.core.settings import Settings
from modelswap.core.store.layout import TOKEN_USE_DIR
from modelswap.core.store.sandbox import UploadPolicy
from modelswap.core.store.store import Store
from modelswap.core.training.jobs import Jobs

logger = logging.getLogger(__name__)

SWITCH_INTERVAL_S = 0.001  # the longest the loop waits for the GIL held by another thread (sys.setswitchinterval)
YOUNG_OBJECTS = 10_000  # the collector's youngest generation (gc.set_threshold; 700 by default up to Python 3.12)

# The inference routes: first in ROUTES (Starlette matches routes in order, and these
# carry the traffic), and the table of the lean layer in front of the app (lean.py).
INFERENCE_ROUTES = [
    Route("/v1/models/{model}/predict", needs(PREDICT, predict.predict), methods=["POST"]),
    Route("/v1/models/{model}/versions/{version}/predict", needs(PREDICT, predict.predict_pinned), methods=["POST"]),
    Route("/predict", needs(PREDICT, predict.predict_default, model="default"), methods=["POST"]),
    Route("/v2/models/{model}/infer", needs(PREDICT, v2.infer), methods=["POST"]),
    Route("/v2/models/{model}/versions/{version}/infer", needs(PREDICT, v2.infer), methods=["POST"]),
    Route("/invocations", needs(PREDICT, mlflow.invocations, model="default"), methods=["POST"]),
]
# Every other route. The role each needs is declared here (auth.needs) and nowhere else;
# a route without one is open to all (probes, metrics, the console's files).
ROUTES = [
    *INFERENCE_ROUTES,
    Route("/v1/whoami", needs(READ, reads.whoami, model=None, always=True), methods=["GET"]),
    Route("/v1/models", needs(READ, reads.list_models, model=None), methods=["GET"]),
    Route("/v1/models/{model}", needs(READ, reads.get_model), methods=["GET"]),
    Route("/v1/models/{model}/versions", needs(READ, reads.list_versions), methods=["GET"]),
    Route("/v1/models/{model}/versions/{version}", needs(READ, reads.get_version), methods=["GET"]),
    Route("/v1/models/{model}/versions/{version}", needs(ADMIN, admin.delete_version), methods=["DELETE"]),
    Route("/v1/models/{model}/versions/{version}/lineage", needs(READ, reads.lineage), methods=["GET"]),
    Route("/v1/models/{model}/compare", needs(READ, reads.compare), methods=["GET"]),
    Route("/v1/models/{model}/aliases", needs(READ, reads.aliases), methods=["GET"]),
    Route("/v1/models/{model}/aliases/{alias}", needs(DEPLOY, admin.set_alias), methods=["PUT"]),
    Route("/v1/models/{model}/aliases/{alias}", needs(DEPLOY, admin.delete_alias), methods=["DELETE"]),
    Route("/v1/model-ids/{model_id}", needs(READ, reads.model_id, model=None), methods=["GET"]),
    Route("/v1/models/{model}/history", needs(READ, reads.history), methods=["GET"]),
    Route("/v1/models/{model}/fleet", needs(READ, reads.fleet), methods=["GET"]),
    Route("/v1/models/{model}/monitor", needs(READ, monitor.view), methods=["GET"]),
    Route("/v1/models/{model}/monitor/config", needs(READ, monitor.get_config), methods=["GET"]),
    Route("/v1/models/{model}/monitor/config", needs(ADMIN, monitor.set_config), methods=["PUT"]),
    Route("/v1/models/{model}/feedback", needs(PREDICT, monitor.feedback), methods=["POST"]),
    Route("/v1/models/{model}/deploy", needs(DEPLOY, admin.deploy), methods=["POST"]),
    Route("/v1/models/{model}/rollback", needs(ROLLBACK, admin.rollback), methods=["POST"]),
    Route("/v1/models/{model}/reload", needs(ROLLBACK, admin.reload), methods=["POST"]),
    Route("/v1/models/{model}/canary", needs(READ, canary.status), methods=["GET"]),
    Route("/v1/models/{model}/canary", needs(DEPLOY, canary.start), methods=["POST"]),
    Route("/v1/models/{model}/canary", needs(ROLLBACK, canary.stop), methods=["DELETE"]),
    Route("/v1/models/{model}/canary/promote", needs(DEPLOY, canary.promote), methods=["POST"]),
    Route("/v1/models/{model}/shadow", needs(READ, delivery.shadow_status), methods=["GET"]),
    Route("/v1/models/{model}/shadow", needs(DEPLOY, delivery.shadow_start), methods=["POST"]),
    Route("/v1/models/{model}/shadow", needs(ROLLBACK, delivery.shadow_stop), methods=["DELETE"]),
    Route("/v1/models/{model}/rollout", needs(READ, delivery.rollout_status), methods=["GET"]),
    Route("/v1/models/{model}/rollout", needs(DEPLOY, delivery.rollout_start), methods=["POST"]),
    Route("/v1/models/{model}/rollout", needs(ROLLBACK, delivery.rollout_abort), methods=["DELETE"]),
    Route("/v1/models/{model}/rollout/pause", needs(ROLLBACK, delivery.rollout_pause), methods=["POST"]),
    Route("/v1/models/{model}/rollout/resume", needs(DEPLOY, delivery.rollout_resume), methods=["POST"]),
    Route("/v1/models/{model}/watch", needs(READ, delivery.watch_status), methods=["GET"]),
    Route("/v1/models/{model}/watch/reset", needs(ROLLBACK, delivery.watch_reset), methods=["POST"]),
    Route("/v1/models/{model}/policy", needs(READ, policy.get_policy), methods=["GET"]),
    Route("/v1/models/{model}/policy", needs(ADMIN, policy.set_policy), methods=["PUT"]),
    Route("/v1/models/{model}/policy", needs(ADMIN, policy.clear_policy), methods=["DELETE"]),
    Route("/v1/alertmanager", needs(DEPLOY, policy.alertmanager, model=None, always=True), methods=["POST"]),
    Route("/v1/models/{model}/versions", needs(DEPLOY, workflows.upload), methods=["POST"]),
    Route("/v1/models/{model}/gc", needs(ADMIN, workflows.gc), methods=["POST"]),
    Route("/v1/models/{model}/retrain", needs(DEPLOY, workflows.retrain), methods=["POST"]),
    Route("/v1/jobs/{job}", needs(DEPLOY, workflows.get_job, model=None, always=True), methods=["GET"]),
    # Open Inference Protocol v2
    Route("/v2", v2.server_metadata, methods=["GET"]),
    Route("/v2/health/live", v2.live, methods=["GET"]),
    Route("/v2/health/ready", v2.ready, methods=["GET"]),
    Route("/v2/models/{model}", needs(READ, v2.model_metadata), methods=["GET"]),
    Route("/v2/models/{model}/ready", needs(READ, v2.model_ready), methods=["GET"]),
    Route("/v2/models/{model}/versions/{version}", needs(READ, v2.model_metadata), methods=["GET"]),
    Route("/v2/models/{model}/versions/{version}/ready", needs(READ, v2.model_ready), methods=["GET"]),
    # MLflow scoring protocol (default model)
    Route("/ping", mlflow.ping, methods=["GET"]),
    Route("/version", mlflow.version_text, methods=["GET"]),
    Route("/healthz", health.healthz, methods=["GET"]),
    Route("/readyz", health.readyz, methods=["GET"]),
    Route("/metrics", health.metrics, methods=["GET"]),
    Route("/openapi.json", health.openapi, methods=["GET"]),
    # the on-call console (reads and acts through the routes above)
    Route("/", console.page, methods=["GET"]),
    Route("/ui", console.page, methods=["GET"]),
    Route("/console/{name}", console.asset, methods=["GET"]),
]


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    serving: Serving | None = None,
    registry: CollectorRegistry | None = None,
) -> Starlette:
    """Build the app for ``settings``; collaborators may be injected (tests do)."""
    metrics = (
        serving.metrics
        if serving is not None
        else Metrics(registry or CollectorRegistry(), per_process=settings.multiproc_dir is not None)
    )
    if serving is None:
        store_for_names = store or Store(settings.root)
        names = settings.models if settings.models is not None else tuple(store_for_names.models())
        serving = Serving(
            {name: store_for_names.paths(name) for name in names},
            metrics=metrics,
            keep_loaded=settings.keep_loaded,
            strict_versions=settings.strict_versions,
            trusted_types=settings.trusted_types,
            share_memory=settings.share_memory,
        )
    if store is None:
        store = Store.from_settings(settings, validator=serving.validator)
    ops = Operations(
        store,
        serving=serving,
        metrics=metrics,
        jobs=Jobs(settings.root, lock=store.lock_policy),
        poll_interval=settings.poll_interval,
        uploads=UploadPolicy.from_settings(settings),
    )
    monitoring = Monitor(store, settings, on_drop=lambda stage, n: metrics.monitor_dropped.labels(stage).inc(n))
    shadows = ShadowRunner(
        max_queue=settings.shadow_queue,
        timeout=settings.predict_timeout,
        on_drop=lambda model, n: metrics.shadow_dropped.labels(model).inc(n),
        bucket_seconds=monitoring.recorder.bucket_seconds,  # agreement over time in the monitoring's buckets
        keep_seconds=settings.monitor_retention,
    )
    driver = Delivery(ops, monitoring, shadows, lease_seconds=settings.lease_seconds)
    runtime = Runtime(
        serving,
        ops,
        watch=settings.watch,
        poll_interval=settings.poll_interval,
        only=settings.models,
        monitor=monitoring,
        delivery=driver,
    )

    def delivery_views(model: str) -> tuple[dict[str, Any], dict[str, Any]]:
        return shadow_view(store, model, stale=settings.monitor_retention), rollout_view(store, model)

    batching = BatchPool(
        max_rows=settings.batch_max_rows,
        wait_s=settings.batch_wait_ms / 1000,
        timeout_s=settings.predict_timeout,
        hand_off_s=settings.batch_hand_off_ms / 1000,
        inline_s=settings.batch_inline_ms / 1000,
        threads=settings.model_threads,
        observe=lambda requests, rows: metrics.batch_requests.observe(requests),
    )
    inference = Inference(
        store, serving, batching, settings=settings, metrics=metrics, monitor=monitoring, shadows=shadows
    )
    token = configured_token(settings)
    keyring = Keyring(
        admin_token=token,
        tokens_file=settings.tokens_path,
        use_dir=settings.root / TOKEN_USE_DIR,
        recheck_s=settings.poll_interval,
    )
    state = AppState(
        settings=settings,
        keyring=keyring,
        limiter=FailureLimiter(limit=settings.auth_failures_per_minute),
        ops=ops,
        runtime=runtime,
        monitor=monitoring,
        collector=MonitorCollector(
            lambda: sorted(serving.slots),
            (lambda model: monitoring.view(model, histograms=False)) if settings.monitor else None,
            ttl=settings.monitor_flush,
            delivery=delivery_views,
        ),
        shadows=shadows,
        batching=batching,
        inference=inference,
        admin_off=admin_off(settings, token),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if settings.multiproc_dir is not None:
            forget_dead_processes(settings.multiproc_dir)
        # Load what `current` names before uvicorn starts accepting: a worker that
        # restarts inside a ready pod must not answer 503 while its model loads.
        await run_in_threadpool(state.runtime.load_all)
        state.monitor.start()
        state.runtime.start(time.time())
        # Move everything imported so far (scikit-learn, numpy, starlette: hundreds of
        # thousands of objects) out of the collector's reach: otherwise every full
        # collection walks them all, a pause of tens of ms that lands in the p99. Given
        # back when the app stops, unless the process had frozen objects of its own
        # (unfreezing cannot tell theirs from ours).
        froze = gc.get_freeze_count() == 0
        gc.collect()
        gc.freeze()
        # The youngest generation is collected whenever 700 more containers (dicts, lists,
        # objects) were made than freed. Requests in flight hold that many: at 64 at a time
        # one turn of the loop made it, and the collector ran once per batch (400 times a
        # second at 20k requests/s, 80 µs each walking the requests still in flight: 4 % of
        # the loop). 10,000 holds a few hundred requests in flight; given back when the app stops.
        thresholds = gc.get_threshold()
        gc.set_threshold(YOUNG_OBJECTS, *thresholds[1:])
        # Any other thread of this process holding the GIL (a model on its worker thread,
        # monitoring's counting, an admin verb on a thread) keeps the loop waiting for it,
        # each time the loop gave it up for a system call, until the holder is made to
        # switch: 5 ms by Python's default, 1 ms here; given back when the app stops (a
        # process that embeds it, e.g. a user's tests, keeps its own).
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        logger.info("serving %s from %s", ", ".join(serving.slots) or "no models", settings.root)
        try:
            yield
        finally:
            sys.setswitchinterval(switch_interval)
            gc.set_threshold(*thresholds)
            if froze:
                gc.unfreeze()
            state.runtime.stop()
            state.batching.close()

    app = Starlette(
        routes=ROUTES,
        exception_handlers=HANDLERS,
        lifespan=lifespan,
        middleware=[Middleware(HttpMetrics, metrics=metrics)],
    )
    app.state.modelswap = state
    return app


def app_from_env() -> LeanInference:
    """uvicorn factory for ``modelswap serve`` workers: everything from the environment;
    the inference routes on their thin layer in front of the app (lean.py)."""
    settings = Settings.from_env()
    configure_logging(settings)
    return LeanInference(create_app(settings), INFERENCE_ROUTES)
