"""Starting and stopping a controlled version: the algorithms canary, shadow and rollout share.

Each puts a published version beside the live one by writing a control file
(``abtest.json``, ``shadow.json``, ``rollout.json`` with ``abtest.json``): the version is
validated like a deploy, and the file is written with its history entry as one change;
a stop journals its entry and removes the file as one change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from modelswap.core.errors import Conflict, InvalidInput
from modelswap.core.store import history
from modelswap.core.store.clock import default_actor, iso
from modelswap.core.store.fsio import fsync_dir, unlink_durable
from modelswap.core.store.ids import validate_version_id
from modelswap.core.store.kernel import Kernel
from modelswap.core.store.layout import ModelPaths
from modelswap.core.store.transitions import schema_change

logger = logging.getLogger(__name__)


def read_quietly(read: Callable[[Any], Any], where: Any) -> Any:
    """``read(where)``, or None with a warning when the control file there is damaged: a
    background pass (the lease holder's heartbeat) goes on with the other models."""
    try:
        return read(where)
    except InvalidInput as exc:
        logger.warning("%s", exc.message)
        return None


T = TypeVar("T")


class Versioned(Protocol):
    @property
    def version(self) -> str: ...


C = TypeVar("C", bound=Versioned)


@dataclass(frozen=True)
class Start:
    """What a start knows under the lock, when it builds its control file."""

    paths: ModelPaths
    version: str
    live: str | None  # the live version, read under the lock
    actor: str
    now: datetime


@dataclass(frozen=True)
class Control(Generic[T]):
    """What a start commits: its outcome, its history entry's details, and the write of its files."""

    result: T
    details: Mapping[str, Any]
    write: Callable[[], object]


def start_controlled(
    kernel: Kernel,
    model: str,
    version: str,
    *,
    kind: str,
    action: str,
    build: Callable[[Start], Control[T]],
    actor: str | None = None,
    reason: str = "",
    force: bool = False,
    needs_live: bool = False,
) -> T:
    """Validate ``version`` like a deploy, then journal ``action`` and write what ``build`` says.

    ``kind`` (canary, shadow, rollout) names the start in messages; ``needs_live``: refuse
    when nothing is live (a shadow or a rollout is measured against the live version).
    ``build(start)`` says what to commit (the outcome, the history entry's details, the
    write of the control files); it may refuse (Conflict) after looking at the model's files.

    1. outside the lock: the version is published; compare its inputs with the live
       version's (IncompatibleSchema unless ``force``: it serves the live version's
       clients); validate it (digests, load, a predict on its example: loading can be slow);
    2. under the lock, re-read: the version is still published and is not the live one;
    3. ``build`` the control file from what the lock holds;
    4. journal the entry and run the write as one change (a write that fails takes the
       entry back: nothing changed).
    """
    validate_version_id(version)
    paths = kernel.existing(model)
    kernel.require_published(kernel.load_registry(paths), paths, version)  # 1
    live = kernel.current(model)
    if needs_live and live is None:
        raise Conflict(f"{model} has no live version: deploy one first (a {kind} is measured against it)")
    change = schema_change(kernel, model, live, version, force=force, what=f"a {kind} of {version}")
    kernel.validator(paths, version)
    who = actor or default_actor()
    with kernel.locked(model):
        registry = kernel.load_registry(paths)  # 2
        kernel.require_published(registry, paths, version)
        live = kernel.current(model)
        if live == version:
            raise Conflict(f"{model} {version} is live; a {kind} must be another version")
        now = kernel.clock()
        control = build(Start(paths, version, live, who, now))  # 3
        details = {**control.details, **change}
        entry = history.HistoryEntry(iso(now), action, who, live, version, reason, details)
        kernel.commit(paths, registry, entry, control.write)  # 4
    return control.result


def stop_controlled(
    kernel: Kernel,
    model: str,
    path: Path,
    read: Callable[[Path], C | None],
    *,
    kind: str,
    action: str,
    actor: str | None = None,
    reason: str = "",
    only_version: str | None = None,
    clear_damaged: bool = False,
) -> C:
    """End a controlled version: journal ``action`` and remove its control file ``path``.

    1. under the lock, ``read`` the file (a damaged one raises InvalidInput, or with
       ``clear_damaged`` is removed: see :func:`read_clearing`); check it still runs, on
       ``only_version`` if given (a process's guard must not stop a newer canary that
       replaced the one it judged);
    2. journal the entry and remove the file as one change (a removal that fails takes
       the entry back), so a process that sees the file gone finds the reason in history.
       A crash between the two leaves history ahead of the file; ``verify --repair``
       completes a canary's stop.
    """
    paths = kernel.existing(model)
    with kernel.locked(model):
        config = read_clearing(path, read, kind=kind, model=model) if clear_damaged else read(path)  # 1
        if config is None or (only_version is not None and config.version != only_version):
            raise Conflict(f"no {kind} of {model}{' on ' + only_version if only_version else ''} is running")
        who = actor or default_actor()
        entry = history.HistoryEntry(iso(kernel.clock()), action, who, config.version, kernel.current(model), reason)
        kernel.commit(paths, kernel.load_registry(paths), entry, lambda: unlink_durable(path))  # 2
    return config


def read_clearing(path: Path, read: Callable[[Path], T | None], *, kind: str, model: str) -> T | None:
    """``read(path)`` for a verb that ends the control file (caller holds the lock): a
    damaged file, or a link, is removed, with Conflict saying so."""
    try:
        return read(path)
    except InvalidInput:
        path.unlink(missing_ok=True)  # a link goes, never what it points to
        fsync_dir(path.parent)
        raise Conflict(f"the {kind} file of {model} was damaged; removed it") from None
