"""The write side of the store: publish, deploy, rollback, delete and gc under ``.lock``.

Readers never take the lock: every file they read is replaced atomically, and
a version directory appears whole (by rename) or not at all.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from modelswap.core.delivery.canary import read_canary
from modelswap.core.errors import (
    InvalidInput,
    ModelNotFound,
    NotFound,
    NothingToRollBack,
    ValidationFailed,
    VersionNotFound,
)
from modelswap.core.schema.signature import Signature
from modelswap.core.serving.loader import load_version, sklearn_mismatch
from modelswap.core.settings import Settings
from modelswap.core.store import registry as reg
from modelswap.core.store import retention, transitions
from modelswap.core.store.clock import utcnow
from modelswap.core.store.fsio import read_json_file, read_link, refuse_link
from modelswap.core.store.ids import is_version_id, validate_model_name, validate_version_id
from modelswap.core.store.layout import METRICS_FILE, ModelPaths, model_paths, version_from_link_target
from modelswap.core.store.ledger import Ledger
from modelswap.core.store.locking import BrokenLock, LockPolicy, hold
from modelswap.core.store.manifest import Manifest
from modelswap.core.store.outcomes import GcPlan, ModelStatus, Transition
from modelswap.core.store.publish import Details, PublishOptions, publish_version
from modelswap.core.store.sandbox import SandboxLimits

logger = logging.getLogger(__name__)

Validator = Callable[[ModelPaths, str], object]


class Store:
    """A model store rooted at ``root``. Thread- and process-safe for writers via ``.lock``."""

    def __init__(
        self,
        root: Path,
        *,
        lock_timeout: float = 30.0,
        lock_kind: str = "flock",
        lock_stale_after: float = 60.0,
        strict_versions: bool = False,
        trusted_types: Sequence[str] = (),
        clock: Callable[[], datetime] = utcnow,
        rand: Callable[[int], str] = secrets.token_hex,
        validator: Validator | None = None,
    ) -> None:
        self.root = Path(root)
        self.lock_policy = LockPolicy(lock_kind, lock_timeout, lock_stale_after)
        self.strict_versions = strict_versions
        self.trusted_types = tuple(trusted_types)  # beyond skops' own: MODELSWAP_TRUSTED_TYPES only
        self.clock = clock
        self.rand = rand
        self.validator: Validator = validator or self._load_and_check
        self.ledger = Ledger()

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
    def paths(self, model: str) -> ModelPaths:
        return model_paths(self.root, model)

    def existing(self, model: str) -> ModelPaths:
        """The paths of a model that exists (ModelNotFound otherwise); a model directory
        or versions/ that is a symlink is refused (UnsafePath), never followed."""
        paths = self.paths(model)
        refuse_link(paths.dir)
        refuse_link(paths.versions_dir)
        if not paths.versions_dir.is_dir() and not paths.registry.exists():
            raise ModelNotFound(f"no model named {model!r} in the store")
        return paths

    def models(self) -> list[str]:
        if not self.root.is_dir():
            return []
        names = []
        for entry in sorted(self.root.iterdir()):
            try:
                validate_model_name(entry.name)
            except InvalidInput:
                continue
            if entry.is_symlink() or (entry / "versions").is_symlink():
                logger.warning("%s is a symlink: not a model (links inside the store are never followed)", entry)
                continue
            if (entry / "versions").is_dir():
                names.append(entry.name)
        return names

    def registry(self, model: str) -> reg.Registry:
        paths = self.existing(model)
        return self.load_registry(paths)

    def load_registry(self, paths: ModelPaths) -> reg.Registry:
        """The index with the journal's tail applied (see core.store.ledger), cached per file version."""
        return self.ledger.registry(paths)

    def save_registry(self, paths: ModelPaths, registry: reg.Registry) -> None:
        """Replace ``versions.json`` (caller holds the lock)."""
        self.ledger.save(paths, registry)

    def commit(
        self,
        paths: ModelPaths,
        registry: reg.Registry,
        entry: reg.HistoryEntry,
        effect: Callable[[], Any] | None = None,
    ) -> reg.Registry:
        """Journal ``entry`` and run ``effect`` as one change (see Ledger.commit); caller holds the lock."""
        return self.ledger.commit(paths, registry, entry, effect)

    def live_sequence(self, model: str) -> Iterator[str]:
        return self.ledger.live_sequence(self.paths(model))

    def rollback_target(self, model: str, registry: reg.Registry, current: str | None) -> str | None:
        return reg.rollback_target(registry, current, self.live_sequence(model), self.exists_fn(model))

    def current(self, model: str) -> str | None:
        target = read_link(self.paths(model).current)
        return version_from_link_target(target) if target is not None else None

    def canary(self, model: str) -> str | None:
        """The canary version named by ``abtest.json``, if a canary runs (a damaged file: none)."""
        try:
            config = read_canary(self.paths(model).abtest)
        except InvalidInput as exc:
            logger.warning("%s; treating the canary as stopped", exc.message)
            return None
        return config.version if config is not None else None

    def on_disk(self, model: str) -> list[str]:
        directory = self.paths(model).versions_dir
        if not directory.is_dir():
            return []
        return sorted(p.name for p in directory.iterdir() if is_version_id(p.name) and p.is_dir())

    def exists_fn(self, model: str) -> Callable[[str], bool]:
        paths = self.paths(model)
        return lambda version: paths.version_dir(version).is_dir()

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

    def manifest(self, model: str, version: str) -> Manifest:
        from modelswap.core.store.manifest import load_manifest

        directory = refuse_link(self.existing(model).version_dir(version))
        if not directory.is_dir():
            raise VersionNotFound(f"model {model} has no version {version}")
        return load_manifest(directory)

    def metrics(self, model: str, version: str) -> dict[str, Any]:
        path = refuse_link(self.existing(model).version_dir(version)) / METRICS_FILE
        try:
            data = read_json_file(path)
        except FileNotFoundError:
            return {}
        except orjson.JSONDecodeError as exc:
            raise ValidationFailed(f"{path} is not valid JSON ({exc}); `modelswap verify` reports the damage") from exc
        return data if isinstance(data, dict) else {}

    # -- locking ----------------------------------------------------------------
    @contextmanager
    def locked(self, model: str, *, on_break: Callable[[BrokenLock], None] | None = None) -> Iterator[ModelPaths]:
        """Hold the model's writer lock (see core.store.locking) for the block; a store whose
        history still lives inside versions.json migrates first. ``on_break``: called with
        each stale soft-lock marker broken to take the lock."""
        paths = self.paths(model)
        paths.dir.mkdir(parents=True, exist_ok=True)
        with hold(paths.lock, self.lock_policy, on_break=on_break):
            self.ledger.migrate(paths)
            yield paths

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
        baseline of drift monitoring (:mod:`modelswap.core.monitoring.profiles`).

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
        return publish_version(self, model, source, details, options, sandbox)

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

    # -- moving `current` ----------------------------------------------------------
    def deploy(
        self, model: str, version: str, *, actor: str | None = None, reason: str = "", force: bool = False
    ) -> Transition:
        """Validate ``version`` and make it live; clears a rolled_back mark. A version whose
        inputs would break clients of the live one is refused unless ``force``."""
        validate_version_id(version)
        return self.move_current(model, lambda registry, current: version, reg.DEPLOY, actor, reason, force=force)

    def rollback(
        self,
        model: str,
        to: str | None = None,
        *,
        actor: str | None = None,
        reason: str = "",
        force: bool = False,
    ) -> Transition:
        """Go back to ``to`` or, with no target, to the previous live version: the most recent one live
        before the current one and not marked rolled_back."""
        if to is not None:
            validate_version_id(to)

        def choose(registry: reg.Registry, current: str | None) -> str:
            if to is not None:
                return to
            target = self.rollback_target(model, registry, current)
            if target is None:
                raise NothingToRollBack(
                    f"{model}: no earlier live version to roll back to (current is {current or 'unset'})"
                )
            return target

        return self.move_current(model, choose, reg.ROLLBACK, actor, reason, force=force)

    def move_current(
        self,
        model: str,
        choose: Callable[[reg.Registry, str | None], str],
        action: str,
        actor: str | None,
        reason: str,
        *,
        force: bool = False,
        **options: Any,
    ) -> Transition:
        """Move ``current`` to the version ``choose`` picks (see core.store.transitions)."""
        return transitions.move_current(self, model, choose, action, actor, reason, force=force, **options)

    def require_published(self, registry: reg.Registry, paths: ModelPaths, version: str) -> None:
        """VersionNotFound unless ``version`` is registered; ValidationFailed if marked corrupt."""
        if version not in registry:
            hint = (
                " (it is on disk but not registered: run `modelswap verify --repair`)"
                if paths.version_dir(version).is_dir()
                else ""
            )
            raise VersionNotFound(f"model {paths.name} has no version {version}{hint}")
        if registry.status_of(version) == reg.CORRUPT:
            raise ValidationFailed(f"{paths.name} {version} is marked corrupt by `verify`; it cannot go live")

    def _load_and_check(self, paths: ModelPaths, version: str) -> object:
        return load_version(paths, version, strict_versions=self.strict_versions, trusted_types=self.trusted_types)

    # -- deleting ---------------------------------------------------------------------
    def delete_version(self, model: str, version: str, *, actor: str | None = None) -> None:
        """Delete one version that is neither live nor the canary (see core.store.retention)."""
        retention.delete_version(self, model, version, actor=actor)

    def gc(self, model: str, keep: int, *, dry_run: bool = False, actor: str | None = None) -> GcPlan:
        """Delete all but the newest ``keep`` versions, never live, canary or rollback target."""
        return retention.gc(self, model, keep, dry_run=dry_run, actor=actor)
