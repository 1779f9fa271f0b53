"""The write side of the store: publish, deploy, rollback, delete and gc under ``.lock``.

Readers never take the lock: every file they read is replaced atomically, and
a version directory appears whole (by rename) or not at all.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from modelswap.core.batch import DEFAULT_CHUNK_ROWS
from modelswap.core.errors import (
    Forbidden,
    NoReferenceWarning,
    NotFound,
    NothingToRollBack,
    ValidationFailed,
    VersionNotFound,
    no_reference,
)
from modelswap.core.schema.inputs import IGNORE, REFUSE
from modelswap.core.schema.signature import Signature
from modelswap.core.serving.loader import load_version, sklearn_mismatch
from modelswap.core.settings import Settings
from modelswap.core.store import registry as reg
from modelswap.core.store import retention, transitions
from modelswap.core.store.fsio import read_json_file, refuse_link
from modelswap.core.store.ids import validate_version_id
from modelswap.core.store.kernel import Kernel
from modelswap.core.store.layout import METRICS_FILE
from modelswap.core.store.outcomes import GcPlan, ModelStatus, Transition
from modelswap.core.store.publish import Details, PublishOptions, publish_version
from modelswap.core.store.sandbox import SandboxLimits

if TYPE_CHECKING:
    from modelswap.core.batch.score import ScoreReport


class Store(Kernel):
    """A model store rooted at ``root``. Thread- and process-safe for writers via ``.lock``.

    The kernel (:class:`modelswap.core.store.kernel.Kernel`) holds the paths, the reads, the
    lock and the commit; the store adds the verbs and the Python API's reads.
    """

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Store:
        options: dict[str, Any] = {
            "lock_timeout": settings.lock_timeout,
            "lock_kind": settings.lock_kind,
            "lock_stale_after": settings.lock_stale_after,
            "strict_versions": settings.strict_versions,
            "trusted_types": settings.trusted_types,
        }
        return cls(settings.root, **{**options, **overrides})

    # -- reads (no lock) ------------------------------------------------------
    def status(self, model: str) -> ModelStatus:
        registry = self.registry(model)
        current = self.current(model)
        return ModelStatus(
            model=model,
            current=current,
            canary=self.canary(model),
            previous=self.rollback_target(model, registry, current),
            versions=len(registry),
        )

    def warnings(self, model: str, current: str | None) -> list[str]:
        """What an operator should know about the live version (another scikit-learn)."""
        if current is None:
            return []
        mismatch = sklearn_mismatch(self.manifest(model, current))
        return [f"current {current}: {mismatch}"] if mismatch else []

    def metrics(self, model: str, version: str) -> dict[str, Any]:
        path = refuse_link(self.existing(model).version_dir(version)) / METRICS_FILE
        try:
            data = read_json_file(path)
        except FileNotFoundError:
            return {}
        except orjson.JSONDecodeError as exc:
            raise ValidationFailed(f"{path} is not valid JSON ({exc}); `modelswap verify` reports the damage") from exc
        return data if isinstance(data, dict) else {}

    # -- publish ----------------------------------------------------------------
    def publish(
        self,
        model: str,
        source: Path | Any,
        *,
        metrics: Mapping[str, Any] | None = None,
        example: Any = None,
        tags: Mapping[str, str] | None = None,
        description: str = "",
        metadata: Mapping[str, Any] | None = None,
        parent: str | None = None,
        signature: Signature | Mapping[str, Any] | None = None,
        actor: str | None = None,
        against_live: bool = False,
        force: bool = False,
        format: str | None = None,
        sandbox: SandboxLimits | None = None,
        reference: Any = None,
        warn_no_reference: bool = True,
    ) -> reg.Version:
        """Publish a new immutable version from a fitted estimator or a model file.

        ``source``: an estimator, or a ``joblib.dump``/``skops.io.dump`` file (path or open
        binary file); ``format`` (joblib, skops) defaults to the file's (.skops or a zip is
        skops), and to joblib for an estimator. A skops file may hold only types skops or
        ``trusted_types`` trust (UntrustedTypes). ``sandbox``: load and predict the file in a
        limited child process, never in this one (HTTP uploads).

        ``example``: a few input rows (a DataFrame, records, rows or an array). The
        signature (named, typed columns; the output) is inferred from it and the fitted
        estimator, unless ``signature`` is given; the version is validated by predicting
        it, now and on every load. Without one, the parent's example is reused when it
        fits, else a model that takes plain numbers is checked with a row of zeros.
        ``parent`` defaults to the live version; ``metadata`` is free-form JSON.
        ``against_live`` refuses a version whose inputs would break clients of the live
        one (IncompatibleSchema) unless ``force`` (HTTP uploads do this).

        ``reference``: the rows the model was trained on (a DataFrame, records, rows or
        an array; more than 100,000 are sampled down). They must fit the signature
        (InvalidInput naming the column otherwise) and the model predicts them; the
        version keeps their profile and its predictions' as ``reference.json``, the
        baseline of drift monitoring (:mod:`modelswap.core.monitoring.profiles`). Without
        one the version is published and a NoReferenceWarning says drift monitoring is off
        (unless ``warn_no_reference`` is False: the server and the CLI say it in their answer).

        1. stage and validate the version's files (:func:`modelswap.core.store.publish.stage_version`),
           which renames the complete directory into ``versions/``;
        2. under the lock, journal a ``publish`` entry carrying the version's record (the
           index takes it in from the journal); if that append fails the new directory is
           removed again and the error raised.
        A crash before 1 ends leaves only a hidden staging directory (removed by
        ``verify --repair``); between 1 and 2 a complete version the registry does
        not name yet (``verify --repair`` registers it).
        """
        if isinstance(signature, Mapping):
            signature = Signature.from_dict(signature)
        details = Details(
            metrics=metrics or {},
            tags=tags or {},
            description=description,
            metadata=metadata or {},
            example=example,
            signature=signature,
            parent=parent,
            reference=reference,
        )
        options = PublishOptions(actor=actor, against_live=against_live, force=force, model_format=format)
        record = publish_version(self, model, source, details, options, sandbox)
        if reference is None and warn_no_reference:
            warnings.warn(NoReferenceWarning(f"{model} {record.id}: {no_reference('reference=')}"), stacklevel=2)
        return record

    # -- the Python API's reads ----------------------------------------------------
    def versions(self, model: str) -> list[reg.Version]:
        """Every published version of ``model``, newest first."""
        return list(reversed(self.registry(model).versions()))

    def version(self, model: str, version: str) -> reg.Version:
        record = self.registry(model).get(validate_version_id(version))
        if record is None:
            raise VersionNotFound(f"model {model} has no version {version}")
        return record

    def best(self, model: str, metric: str, *, lower_is_better: bool | None = None) -> reg.Version:
        """The version with the best ``metric`` (ties: the newest). Lower is better for
        names ending in loss, error, mse, mae or rmse unless ``lower_is_better`` says."""
        lower = reg.lower_is_better(metric) if lower_is_better is None else lower_is_better
        best = reg.best_version(self.registry(model).versions(), metric, lower_is_better=lower)
        if best is None:
            raise NotFound(f"no version of {model} has a metric {metric!r}")
        return best

    def history(self, model: str, *, limit: int | None = None) -> list[reg.HistoryEntry]:
        """Deploy history (deploys, rollbacks, canary events, deletions), newest first."""
        return self.history_page(model, limit=limit)[0]

    def history_page(
        self, model: str, *, limit: int | None = None, before: int | None = None
    ) -> tuple[list[reg.HistoryEntry], int | None]:
        """A page of history, newest first, and the ``before`` cursor of the next page."""
        return self.ledger.page(self.existing(model), None if limit is None else max(limit, 0), before)

    def load(self, model: str, version: str | None = None) -> Any:
        """The estimator of ``version`` (default: the live one), validated exactly as a
        serving process loads it: digests, load, a predict on the input example."""
        paths = self.existing(model)
        target = version if version is not None else self.current(model)
        if target is None:
            raise NotFound(f"{model} has no live version; name one: load({model!r}, version)")
        self.require_published(self.load_registry(paths), paths, validate_version_id(target))
        return load_version(
            paths, target, strict_versions=self.strict_versions, trusted_types=self.trusted_types
        ).estimator

    def score(
        self,
        model: str,
        input: str | Path,
        output: str | Path,
        *,
        version: str | None = None,
        method: str = "predict",
        keep: Sequence[str] = (),
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        rejects: str | Path | None = None,
        ignore_extra_columns: bool = False,
        actor: str | None = None,
        progress: Callable[[int, float], None] | None = None,
    ) -> ScoreReport:
        """Score a Parquet, CSV or JSON Lines file with one version of ``model`` into another.

        ``version``: an id or alias (default: the live one), resolved once at the start, so
        a deploy during the job changes nothing in it. Rows are read ``chunk_rows`` at a
        time (default 65,536), never the whole file, and meet the signature exactly as a
        request does. Output columns: ``keep`` (copied from the input), then
        ``prediction``, or ``proba_<class>`` per class, or ``decision``. A row that does
        not fit raises InvalidInput naming the row and column and writes nothing, unless
        ``rejects`` names a file for such rows. The output appears whole, with its
        metadata (Parquet key-value metadata, else ``OUTPUT.meta.json``), and history
        records a ``score`` entry. ``progress(rows, fraction_read)`` is called per chunk.
        See docs/batch.md.
        """
        from modelswap.core.batch.score import score  # pyarrow, only when a job runs

        return score(
            self,
            model,
            input,
            output,
            version=version,
            method=method,
            keep=keep,
            chunk_rows=chunk_rows,
            rejects=rejects,
            extra=IGNORE if ignore_extra_columns else REFUSE,
            actor=actor,
            progress=progress,
        )

    # -- moving `current` ----------------------------------------------------------
    def deploy(
        self,
        model: str,
        version: str,
        *,
        actor: str | None = None,
        reason: str = "",
        force: bool = False,
        details: Mapping[str, Any] | None = None,
        also: transitions.Also | None = None,
    ) -> Transition:
        """Validate ``version`` and make it live; clears a rolled_back mark. A version whose
        inputs would break clients of the live one is refused unless ``force``.

        ``details`` go into the history entry, and ``also`` names one more file written with
        the move as one change (a watched deploy's ``watch.json``: see
        :func:`modelswap.core.delivery.watched_deploy.watch_file`)."""
        validate_version_id(version)
        return transitions.move_current(
            self, model, lambda registry, current: version, reg.DEPLOY, actor, reason,
            force=force, details=details, also=also,
        )  # fmt: skip

    def rollback(
        self,
        model: str,
        to: str | None = None,
        *,
        actor: str | None = None,
        reason: str = "",
        force: bool = False,
        earlier_only: bool = False,
    ) -> Transition:
        """Go back to ``to`` or, with no target, to the previous live version: the most recent one live
        before the current one and not marked rolled_back. ``earlier_only``: ``to`` must have
        been live before (Forbidden otherwise: putting any other version live is a deploy)."""
        if to is not None:
            validate_version_id(to)

        def choose(registry: reg.Registry, current: str | None) -> str:
            if to is not None:
                if earlier_only and to not in set(self.live_sequence(model)):
                    raise Forbidden(
                        f"{model}: {to} was never live, so going to it is a deploy: this needs the 'deploy' role "
                        "(a rollback may go back to a version that was live before)",
                        "deploy",
                    )
                return to
            target = self.rollback_target(model, registry, current)
            if target is None:
                raise NothingToRollBack(
                    f"{model}: no earlier live version to roll back to (current is {current or 'unset'})"
                )
            return target

        return transitions.move_current(self, model, choose, reg.ROLLBACK, actor, reason, force=force)

    # -- deleting ---------------------------------------------------------------------
    def delete_version(self, model: str, version: str, *, actor: str | None = None) -> None:
        """Delete one version that is neither live nor the canary (see core.store.retention)."""
        retention.delete_version(self, model, version, actor=actor)

    def gc(self, model: str, keep: int, *, dry_run: bool = False, actor: str | None = None) -> GcPlan:
        """Delete all but the newest ``keep`` versions, never live, canary or rollback target."""
        return retention.gc(self, model, keep, dry_run=dry_run, actor=actor)
