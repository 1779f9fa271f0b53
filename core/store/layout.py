"""Where a model's files live under the store root; the only module that names them.

Every path is built from a validated model name and version id, so nothing
outside ``<root>`` can be addressed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from modelswap.core.store.ids import validate_model_name, validate_version_id

# Files inside a version directory: exactly one model file, named after its format.
MODEL_FILE = "model.joblib"  # joblib (pickle)
SKOPS_MODEL_FILE = "model.skops"
MODEL_FILES = {"joblib": MODEL_FILE, "skops": SKOPS_MODEL_FILE}
METRICS_FILE = "metrics.json"
MANIFEST_FILE = "manifest.json"
REFERENCE_FILE = "reference.json"  # optional: the reference profile (core.monitoring.profiles)

# Files inside a model directory.
VERSIONS_DIR = "versions"
CURRENT_LINK = "current"
REGISTRY_FILE = "versions.json"
HISTORY_FILE = "history.jsonl"
ABTEST_FILE = "abtest.json"
ALIASES_FILE = "aliases.json"
LOCK_FILE = ".lock"
FLEET_DIR = ".fleet"
MONITOR_DIR = ".monitor"  # each serving process's online counts
MONITOR_FILE = "monitor.json"  # the model's monitoring thresholds
SHADOW_FILE = "shadow.json"  # the shadow config; absent when no shadow runs
SHADOW_DIR = ".shadow"  # each serving process's shadow comparison counts
ROLLOUT_FILE = "rollout.json"  # the stepped rollout's state (kept after it ends)
WATCH_FILE = "watch.json"  # the watched deploy's state (kept after it ends)
POLICY_FILE = "policy.json"  # the delivery policy: what happens to a new version (core.delivery.policy)
CANDIDATE_FILE = "candidate.json"  # where the newest candidate stands in the policy (kept after it ends)
LEASE_FILE = ".lease"  # which serving process drives the model's rollout and watch

# Files at the store root.
ADMIN_TOKEN_FILE = ".admin-token"
TOKENS_FILE = ".tokens.json"  # named tokens, when MODELSWAP_TOKENS_FILE does not name another file
TOKEN_USE_DIR = ".token-use"  # one empty file per token name: its mtime is the token's last use
JOBS_DIR = ".jobs"

# Prefixes of transient entries; a crash may leave them behind for `verify --repair`.
STAGING_PREFIX = ".staging-"  # in versions/: a version being written
TRASH_PREFIX = ".trash-"  # in versions/: a version being deleted
TMP_MARK = ".tmp-"  # beside a file or link: the half of an atomic replace


@dataclass(frozen=True)
class ModelPaths:
    """The paths of one model's files. Build it with :func:`model_paths`. Each path is
    built once per instance (the serving processes' polls ask for them every second)."""

    root: Path
    name: str

    @functools.cached_property
    def dir(self) -> Path:
        return self.root / self.name

    @functools.cached_property
    def versions_dir(self) -> Path:
        return self.dir / VERSIONS_DIR

    @functools.cached_property
    def current(self) -> Path:
        return self.dir / CURRENT_LINK

    @functools.cached_property
    def registry(self) -> Path:
        return self.dir / REGISTRY_FILE

    @functools.cached_property
    def history(self) -> Path:
        return self.dir / HISTORY_FILE

    @functools.cached_property
    def abtest(self) -> Path:
        return self.dir / ABTEST_FILE

    @functools.cached_property
    def aliases(self) -> Path:
        return self.dir / ALIASES_FILE

    @functools.cached_property
    def lock(self) -> Path:
        return self.dir / LOCK_FILE

    @functools.cached_property
    def fleet_dir(self) -> Path:
        return self.dir / FLEET_DIR

    @functools.cached_property
    def monitor_dir(self) -> Path:
        return self.dir / MONITOR_DIR

    @functools.cached_property
    def monitor_config(self) -> Path:
        return self.dir / MONITOR_FILE

    @functools.cached_property
    def shadow(self) -> Path:
        return self.dir / SHADOW_FILE

    @functools.cached_property
    def shadow_dir(self) -> Path:
        return self.dir / SHADOW_DIR

    @functools.cached_property
    def rollout(self) -> Path:
        return self.dir / ROLLOUT_FILE

    @functools.cached_property
    def watch(self) -> Path:
        return self.dir / WATCH_FILE

    @functools.cached_property
    def policy(self) -> Path:
        return self.dir / POLICY_FILE

    @functools.cached_property
    def candidate(self) -> Path:
        return self.dir / CANDIDATE_FILE

    @functools.cached_property
    def lease(self) -> Path:
        return self.dir / LEASE_FILE

    def version_dir(self, version: str) -> Path:
        return self.versions_dir / validate_version_id(version)

    def version_link_target(self, version: str) -> str:
        """The RELATIVE target ``current`` holds for ``version``."""
        return f"{VERSIONS_DIR}/{validate_version_id(version)}"


def staging_name(version: str, rand: str, pid: int, host: str) -> str:
    """``.staging-<version>-<rand>~<pid>@<host>``: the owner in the name, so ``verify``
    can tell a publish in flight from a crash's leftover (``~`` and ``@`` are in no host
    name)."""
    return f"{STAGING_PREFIX}{version}-{rand}~{pid}@{host}"


def staging_owner(name: str) -> tuple[int, str] | None:
    """(pid, host) of a staging directory's publisher, None for a name without one."""
    _, sep, owner = name.rpartition("~")
    pid, at, host = owner.partition("@")
    if not sep or not at or not pid.isdigit() or not host:
        return None
    return int(pid), host


def model_paths(root: Path, name: str) -> ModelPaths:
    """Paths of model ``name`` under ``root``; raises InvalidName for a bad name."""
    return ModelPaths(Path(root), validate_model_name(name))


def model_file_name(fmt: str) -> str:
    """The model file's name in a version directory for format ``fmt`` (joblib, skops)."""
    return MODEL_FILES[fmt]


def find_model_file(version_dir: Path) -> Path:
    """The version's model file: ``model.skops`` if present, else ``model.joblib``."""
    skops = version_dir / SKOPS_MODEL_FILE
    return skops if skops.exists() else version_dir / MODEL_FILE


def version_from_link_target(target: str) -> str | None:
    """The version id a ``current`` link target names, or None when it names none.

    Only the exact relative form ``versions/<id>`` counts: an absolute target or
    one that climbs out of the model directory is treated as naming nothing.
    """
    prefix = VERSIONS_DIR + "/"
    if not target.startswith(prefix):
        return None
    candidate = target[len(prefix) :].rstrip("/")
    from modelswap.core.store.ids import is_version_id

    return candidate if is_version_id(candidate) else None
