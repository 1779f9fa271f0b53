"""The operations layer: every admin verb and read view of modelswap, with no transport.

The HTTP routes and the CLI (working directly on the store) call the same methods, so
a view is assembled, a history entry written and an admin metric counted in exactly
one place (MLServer's DataPlane plays this part there). Verbs return frozen values;
views return JSON-ready dicts, the shapes the HTTP API documents.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from modelswap.core.access.roles import ADMIN
from modelswap.core.delivery import alerts
from modelswap.core.delivery import rollout as ro
from modelswap.core.delivery.abtest import CanaryConfig, Guard, read_canary
from modelswap.core.delivery.canary import promote_canary, start_canary, stop_canary
from modelswap.core.delivery.pipeline import candidate_view
from modelswap.core.delivery.policy import clear_policy, set_policy
from modelswap.core.delivery.rollout import Rollout
from modelswap.core.delivery.shadow import ShadowConfig, start_shadow, stop_shadow
from modelswap.core.delivery.watched_deploy import RESET, Watch, WatchPlan, check_not_tripped, end_watch, watch_file
from modelswap.core.errors import Conflict, Forbidden, InvalidInput, ModelswapError, UnsupportedFormat, storage_error
from modelswap.core.metrics import Metrics
from modelswap.core.monitoring.fleet_counts import read_config, write_config
from modelswap.core.schema.signature import manifest_signature
from modelswap.core.serving.fleet import process_id, read_fleet
from modelswap.core.serving.slots import Serving
from modelswap.core.store import registry as reg
from modelswap.core.store.aliases import aliases_of, delete_alias, read_aliases, resolve, set_alias
from modelswap.core.store.catalog import compare, find_model_id, lineage, matches, parse_where
from modelswap.core.store.formats import JOBLIB, detect_format
from modelswap.core.store.ids import validate_model_name
from modelswap.core.store.outcomes import GcPlan, Transition
from modelswap.core.store.sandbox import UploadPolicy
from modelswap.core.store.store import Store
from modelswap.core.training.fit import RetrainOutcome, retrain
from modelswap.core.training.jobs import Job, Jobs, RetrainRequest

logger = logging.getLogger(__name__)
T = TypeVar("T")

GUARD = "guard"


class Operations:
    """Admin verbs and read views over one store.

    In a serving process, ``serving`` holds what this process serves: a verb that
    moves ``current`` or the canary returns only after this process serves the
    outcome (the HTTP API promises that a deploy or rollback answers only once the
    process that took it serves the new version),
    and ``on_swap`` runs after such a swap (the fleet heartbeat). Verbs block on disk
    and model loads: call them from a worker thread, never an event loop.
    """

    def __init__(
        self,
        store: Store,
        *,
        serving: Serving | None = None,
        metrics: Metrics | None = None,
        jobs: Jobs | None = None,
        poll_interval: float = 1.0,
        on_swap: Callable[[], None] | None = None,
        uploads: UploadPolicy | None = None,
    ) -> None:
        self.store = store
        self.uploads = uploads or UploadPolicy()
        self.serving = serving
        self.metrics = metrics
        self.jobs = jobs or Jobs(store.root, lock=store.lock_policy)
        self.poll_interval = poll_interval
        self.on_swap = on_swap
        self.discover: Callable[[], None] | None = None  # a serving process: look for new models

    # -- verbs -------------------------------------------------------------------------
    def deploy(
        self,
        model: str,
        version: str,
        *,
        actor: str,
        reason: str = "",
        force: bool = False,
        watch: WatchPlan | None = None,
    ) -> Transition:
        """Make ``version`` (an id or an alias) live; ``force`` allows a breaking schema change.
        With ``watch``, the serving processes watch it and roll back by themselves on a
        breach (core.delivery.watched_deploy); ``watch.json`` is written with the move as one change."""

        def deploy() -> Transition:
            target = resolve(self.store, model, version)
            check_not_tripped(self.store, model, target)
            if watch is None:
                return self.store.deploy(model, target, actor=actor, reason=reason, force=force)
            also = watch_file(self.store, model, watch)
            return self.store.deploy(model, target, actor=actor, reason=reason, force=force,
                                     details={"watch": watch.to_dict()}, also=also)  # fmt: skip

        return self._act(model, "deploy", deploy)

    def rollback(
        self,
        model: str,
        to: str | None = None,
        *,
        actor: str,
        reason: str = "",
        force: bool = False,
        earlier_only: bool = False,
    ) -> Transition:
        """``earlier_only``: ``to`` must have been live before (a caller who may not deploy)."""

        def rollback() -> Transition:
            target = resolve(self.store, model, to) if to is not None else None
            return self.store.rollback(
                model, target, actor=actor, reason=reason, force=force, earlier_only=earlier_only
            )

        return self._act(model, "rollback", rollback)

    def canary_start(
        self,
        model: str,
        version: str,
        fraction: float,
        *,
        guard: Guard | None = None,
        actor: str,
        reason: str = "",
        force: bool = False,
    ) -> CanaryConfig:
        def start() -> CanaryConfig:
            target = resolve(self.store, model, version)
            return start_canary(
                self.store, model, target, fraction, guard=guard, actor=actor, reason=reason, force=force
            )

        return self._act(model, "canary_start", start)

    def canary_stop(self, model: str, *, actor: str, reason: str = "") -> CanaryConfig:
        return self._act(model, "canary_stop", lambda: stop_canary(self.store, model, actor=actor, reason=reason))

    def canary_promote(self, model: str, *, actor: str, reason: str = "", force: bool = False) -> Transition:
        return self._act(
            model,
            "canary_promote",
            lambda: promote_canary(self.store, model, actor=actor, reason=reason, force=force),
        )

    def canary_abort(self, model: str, version: str, *, reason: str) -> bool:
        """The guard's stop: end the canary only if ``version`` is still it (another
        process's guard, or a person, may have ended or replaced it first)."""

        try:
            stop_canary(self.store, model, actor=GUARD, reason=reason, action=reg.CANARY_ABORT, only_version=version)
        except Conflict:
            self._count(model, "canary_abort", "noop")
            return False
        except (ModelswapError, OSError):
            self._count(model, "canary_abort", "failure")
            raise
        self.sync(model)
        self._count(model, "canary_abort", "success")
        return True

    # -- progressive delivery (driven by the serving processes: core.delivery.driver) --------------
    def shadow_start(
        self, model: str, version: str, fraction: float = 1.0, *, actor: str, reason: str = "", force: bool = False
    ) -> ShadowConfig:
        def start() -> ShadowConfig:
            target = resolve(self.store, model, version)
            return start_shadow(self.store, model, target, fraction, actor=actor, reason=reason, force=force)

        return self._act(model, "shadow_start", start)

    def shadow_stop(self, model: str, *, actor: str, reason: str = "") -> ShadowConfig:
        return self._act(model, "shadow_stop", lambda: stop_shadow(self.store, model, actor=actor, reason=reason))

    def rollout_start(self, model: str, plan: Mapping[str, Any], *, actor: str, reason: str = "",
                      force: bool = False) -> Rollout:  # fmt: skip
        def start() -> Rollout:
            parsed = ro.Plan.from_dict({**plan, "version": resolve(self.store, model, str(plan.get("version")))})
            return ro.start_rollout(self.store, model, parsed, actor=actor, reason=reason, force=force)

        return self._act(model, "rollout_start", start)

    def rollout_change(self, model: str, action: str, *, actor: str, reason: str = "") -> Rollout:
        """Pause, resume or abort (``rollout_pause`` / ``_resume`` / ``_abort``) by a person."""
        return self._act(
            model, action, lambda: ro.change_rollout(self.store, model, action, actor=actor, reason=reason)
        )

    def watch_reset(self, model: str, *, actor: str, reason: str = "") -> Watch:
        """End a watch by hand: stop watching, or clear a trip so the version can be deployed again."""
        return self._act(model, "watch_reset", lambda: end_watch(self.store, model, RESET, actor=actor, reason=reason))

    def policy_set(self, model: str, data: Any, *, actor: str, reason: str = "") -> dict[str, Any]:
        """Set the model's delivery policy (core.delivery.policy); returns the policy view."""
        self._act(model, "policy_set", lambda: set_policy(self.store, model, data, actor=actor, reason=reason))
        return candidate_view(self.store, model)

    def policy_clear(self, model: str, *, actor: str, reason: str = "") -> dict[str, Any]:
        self._act(model, "policy_clear", lambda: clear_policy(self.store, model, actor=actor, reason=reason))
        return candidate_view(self.store, model)

    def policy(self, model: str) -> dict[str, Any]:
        return candidate_view(self.store, model)

    def alertmanager(self, payload: Any, *, caller: str, covers: Callable[[str], bool]) -> dict[str, Any]:
        """Act on an Alertmanager webhook (core.delivery.alerts); every alert counted by outcome."""
        parsed = alerts.parse_payload(payload)
        results = alerts.handle_alerts(self.store, self.jobs, parsed, caller=caller, covers=covers)
        for result in results:
            if self.metrics is not None:
                self.metrics.alertmanager_alerts.labels(result["outcome"]).inc()
            if result["outcome"] == alerts.RETRAIN:
                self._count(result["model"], "alert_retrain", "success")
        return {"alerts": results, "retrains": sum(r["outcome"] == alerts.RETRAIN for r in results)}

    def delete(self, model: str, version: str, *, actor: str) -> dict[str, Any]:
        self._act(model, "delete", lambda: self.store.delete_version(model, version, actor=actor))
        return {"model": model, "deleted": version}

    def gc(self, model: str, keep: int, *, dry_run: bool = False, actor: str) -> GcPlan:
        return self._act(model, "gc", lambda: self.store.gc(model, keep, dry_run=dry_run, actor=actor))

    def publish(
        self, model: str, source: Path | Any, *, actor: str, action: str = "publish", **options: Any
    ) -> reg.Version:
        """Publish a file, an open upload or an estimator; ``action`` names it in metrics. A
        version without a reference is said in the caller's answer, not warned in this process."""
        return self._act(
            model, action, lambda: self.store.publish(model, source, actor=actor, warn_no_reference=False, **options)
        )

    def upload(
        self,
        model: str,
        file: BinaryIO,
        *,
        filename: str | None,
        actor: str,
        pickle_allowed: bool = True,
        **options: Any,
    ) -> reg.Version:
        """Publish a model file sent over HTTP: a skops file, or a pickle (joblib) only when
        the server allows them (UnsupportedFormat otherwise) and the caller may send one
        (``pickle_allowed``: its token holds ``admin``; Forbidden otherwise), validated in a
        limited child process: this process loads it only once that child found it sound."""

        def upload() -> reg.Version:
            fmt = detect_format(filename, file.read(8))
            file.seek(0)
            if fmt == JOBLIB and not self.uploads.allow_pickle:
                raise UnsupportedFormat(
                    "this server takes model uploads in the skops format only (skops.io.dump(model, "
                    "'model.skops')): loading a pickle (joblib) file runs any code it names. Publish "
                    "joblib files with the local CLI, or set MODELSWAP_ALLOW_PICKLE_UPLOADS=1 on the server"
                )
            if fmt == JOBLIB and not pickle_allowed:
                raise Forbidden(
                    f"uploading a pickle (joblib) file needs the {ADMIN!r} role: loading it runs any code it "
                    "names; send a skops file (skops.io.dump(model, 'model.skops')) with a 'deploy' token",
                    ADMIN,
                )
            return self.store.publish(
                model, file, actor=actor, format=fmt, sandbox=self.uploads.limits, warn_no_reference=False, **options
            )

        return self._act(model, "upload", upload)

    def retrain(self, params: RetrainRequest, *, actor: str) -> Job:
        """Start a retraining job in its own process (any pod can answer for it)."""
        return self._act(params.model, "retrain", lambda: self.jobs.start(params, actor))

    def train(self, model: str, *, actor: str, **options: Any) -> RetrainOutcome:
        """Train, evaluate, publish (and deploy as asked) in this process."""
        return self._act(model, "train", lambda: retrain(self.store, model, actor=actor, **options))

    def set_monitor_config(self, model: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Change some of the model's monitoring thresholds (monitor.json); the others are kept."""

        def update() -> dict[str, Any]:
            if not isinstance(changes, Mapping):
                raise InvalidInput('monitoring settings are an object like {"psi_warning": 0.3}')
            self.store.existing(model)  # never a directory for a model that is not there
            with self.store.locked(model) as paths:
                config = read_config(paths).updated(changes)
                write_config(paths, config)
            return {"model": model, **config.to_dict()}

        return self._act(model, "set_monitor_config", update)

    def reload(self, model: str) -> dict[str, Any]:
        """Re-read ``current`` and ``abtest.json`` now, retrying a version that failed to load."""
        serving = self._serving()
        if validate_model_name(model) not in serving.slots and self.discover is not None:
            self.discover()  # a model created since the last look
        slot = serving.slot(model)
        self._act(model, "reload", lambda: slot.sync(force=True))
        return {"model": model, **slot.info()}

    def _act(self, model: str, action: str, operation: Callable[[], T]) -> T:
        """Run one verb, count it (success or failure), and bring this process up to date."""
        validate_model_name(model)  # a bad name is refused before it can become a metric label
        try:
            result = operation()
        except ModelswapError:
            self._count(model, action, "failure")
            raise
        except OSError as exc:  # a full disk, a read-only mount: a clear error, not a 500
            self._count(model, action, "failure")
            logger.error("%s %s: %s", action, model, exc)
            raise storage_error(exc) from exc
        self.sync(model)
        self._count(model, action, "success")
        return result

    def count(self, model: str, action: str, outcome: str = "success") -> None:
        """Count an admin action taken outside a verb (the rollout driver's steps, a watch's rollback)."""
        self._count(model, action, outcome)

    def _count(self, model: str, action: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.admin_actions.labels(model, action, outcome).inc()

    def sync(self, model: str) -> None:
        """Serve what the store now says, in this process (a no-op without serving)."""
        slot = self.serving.slots.get(model) if self.serving is not None else None
        if slot is not None and slot.sync() and self.on_swap is not None:
            self.on_swap()

    def _serving(self) -> Serving:
        if self.serving is None:
            raise InvalidInput("reload needs a serving process: send it to a server (--url)")
        return self.serving

    # -- views -------------------------------------------------------------------------
    def models(self) -> list[dict[str, Any]]:
        """Every model: current, canary, previous (the rollback target), versions count."""
        return [self.store.status(m).to_dict() for m in self.store.models()]

    def model(self, model: str) -> dict[str, Any]:
        """One model's status, warnings, and what THIS process serves (None outside a server)."""
        data = self.store.status(model).to_dict()
        data["warnings"] = self.store.warnings(model, data["current"])
        signature = manifest_signature(self.store.manifest(model, data["current"])) if data["current"] else None
        data["signature"] = signature.to_dict() if signature is not None else None
        data["aliases"] = read_aliases(self.store.existing(model))
        slot = self.serving.slots.get(model) if self.serving is not None else None
        this: dict[str, Any] | None = None
        if self.serving is not None:
            this = {"process": process_id(), "served": slot is not None, **(slot.info() if slot else {})}
        data["this_process"] = this
        return data

    def versions(
        self, model: str, *, where: list[str] | None = None, tags: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Every version, newest first, each with its live marks (current, canary, previous)
        and aliases; ``where`` (``accuracy>0.9``) and ``tags`` keep the matching ones."""
        status = self.store.status(model)
        marks = {"current": status.current, "canary": status.canary, "previous": status.previous}
        aliases = read_aliases(self.store.existing(model))
        filters = parse_where(where or [])
        versions = []
        for record in self.store.versions(model):
            if not matches(record, filters, tags or {}):
                continue
            entry = record.to_dict()
            entry["live"] = [mark for mark, version in marks.items() if version == record.id]
            entry["aliases"] = aliases_of(aliases, record.id)
            versions.append(entry)
        return {**marks, "model": model, "aliases": aliases, "versions": versions}

    def version(self, model: str, version: str) -> dict[str, Any]:
        """One version (an id or an alias): its registry record, manifest and metrics, and
        its reference profile's rows and columns (null when published without one)."""
        target = resolve(self.store, model, version)
        record = self.store.version(model, target)
        manifest = self.store.manifest(model, target)
        return {
            **record.to_dict(),
            "model": model,
            "aliases": aliases_of(read_aliases(self.store.existing(model)), target),
            "manifest": manifest.to_dict(),
            "metrics": self.store.metrics(model, target),
            "reference": dict(manifest.reference) if manifest.reference is not None else None,
        }

    def model_id(self, model_id: str) -> dict[str, Any]:
        """The version whose content id is ``model_id``, wherever it lives in the store."""
        model, record = find_model_id(self.store, model_id)
        return self.version(model, record.id)

    def lineage(self, model: str, version: str) -> dict[str, Any]:
        return lineage(self.store, model, resolve(self.store, model, version))

    def compare(self, model: str, a: str, b: str) -> dict[str, Any]:
        return compare(self.store, model, resolve(self.store, model, a), resolve(self.store, model, b))

    def aliases(self, model: str) -> dict[str, Any]:
        return {"model": model, "aliases": read_aliases(self.store.existing(model))}

    def alias_set(self, model: str, alias: str, version: str, *, actor: str) -> dict[str, Any]:
        aliases = self._act(model, "alias_set", lambda: set_alias(self.store, model, alias, version, actor=actor))
        return {"model": model, "aliases": aliases}

    def alias_delete(self, model: str, alias: str, *, actor: str) -> dict[str, Any]:
        aliases = self._act(model, "alias_delete", lambda: delete_alias(self.store, model, alias, actor=actor))
        return {"model": model, "aliases": aliases}

    def history(self, model: str, *, limit: int | None = None) -> dict[str, Any]:
        entries = self.store.history(model, limit=limit)
        return {"model": model, "history": [e.to_dict() for e in entries]}

    def fleet(self, model: str) -> dict[str, Any]:
        """Every serving process's heartbeat and the convergence summary ("3/3 on <id>")."""
        self.store.existing(model)
        view = read_fleet(self.store.paths(model), self.poll_interval, self.store.current(model))
        return {"model": model, **view.to_dict()}

    def canary(self, model: str) -> dict[str, Any]:
        """The canary config and, in a server, this process's per-variant counts."""
        config = read_canary(self.store.existing(model).abtest)
        slot = self.serving.slots.get(model) if self.serving is not None else None
        return {
            "model": model,
            "running": config is not None,
            "config": config.to_dict() if config else None,
            "this_process": (
                {"canary_loaded": slot.canary_version, "counts": slot.canary_stats.to_dict()}
                if slot is not None
                else None
            ),
        }

    def monitor_config(self, model: str) -> dict[str, Any]:
        """The model's monitoring thresholds: monitor.json, or the defaults."""
        return {"model": model, **read_config(self.store.existing(model)).to_dict()}

    def job(self, job: str) -> dict[str, Any]:
        return self.jobs.get(job)
