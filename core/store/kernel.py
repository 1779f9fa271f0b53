"""The store's kernel: where a model's files are, the reads every writer needs, the lock, and the commit.

Every writer's algorithm (publish, moving ``current``, retention, aliases, the canary,
shadow, rollout and watch verbs, verify's repairs) takes a Kernel and nothing more;
:class:`modelswap.core.store.store.Store` adds the verbs on top of it.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from modelswap.core.delivery.abtest import read_canary
from modelswap.core.errors import InvalidInput, ModelNotFound, ValidationFailed, VersionNotFound
from modelswap.core.serving.loader import load_version
from modelswap.core.store import registry as reg
from modelswap.core.store.clock import utcnow
from modelswap.core.store.formats import expand_trusted
from modelswap.core.store.fsio import read_link, refuse_link
from modelswap.core.store.ids import is_version_id, validate_model_name
from modelswap.core.store.layout import ModelPaths, model_paths, version_from_link_target
from modelswap.core.store.ledger import Ledger
from modelswap.core.store.locking import BrokenLock, LockPolicy, hold
from modelswap.core.store.manifest import Manifest, load_manifest

logger = logging.getLogger(__name__)

Validator = Callable[[ModelPaths, str], object]


class Kernel:
    """A model store rooted at ``root``: paths, reads, the writers' lock and the commit."""

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
        # beyond skops' own: MODELSWAP_TRUSTED_TYPES only ("sklearn": scikit-learn's tree types)
        self.trusted_types = expand_trusted(trusted_types)
        self.clock = clock
        self.rand = rand
        self.validator: Validator = validator or self._load_and_check
        self.ledger = Ledger()

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

    def manifest(self, model: str, version: str) -> Manifest:
        directory = refuse_link(self.existing(model).version_dir(version))
        if not directory.is_dir():
            raise VersionNotFound(f"model {model} has no version {version}")
        return load_manifest(directory)

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

    # -- writing (under the lock) ----------------------------------------------------
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

    def _load_and_check(self, paths: ModelPaths, version: str) -> object:
        return load_version(paths, version, strict_versions=self.strict_versions, trusted_types=self.trusted_types)
