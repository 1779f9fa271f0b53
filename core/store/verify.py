"""``modelswap verify [--repair]``: find, and where safe mend, what a crash or a hand left wrong.

History is the journal of intent (each change is journaled before it takes effect), the
``current`` symlink is the truth of what is live, and the directories are the truth of
what exists. ``verify`` compares the three and ``--repair`` brings them back together,
recording in history what it found and did. It reports and skips what it cannot mend
(a symlink where a directory should be, a file it may not remove), never aborting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from modelswap.core.errors import ModelswapError
from modelswap.core.store.clock import default_actor
from modelswap.core.store.kernel import Kernel
from modelswap.core.store.layout import ModelPaths
from modelswap.core.store.locking import BrokenLock, read_marker, soft_marker
from modelswap.core.store.verify_checks import Check

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    model: str
    kind: str
    message: str
    repaired: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "kind": self.kind, "message": self.message, "repaired": self.repaired}


@dataclass(frozen=True)
class Report:
    problems: tuple[Problem, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong any more (all problems repaired, or none)."""
        return all(p.repaired for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "problems": [p.to_dict() for p in self.problems]}


def verify_store(
    kernel: Kernel, models: list[str] | None = None, *, repair: bool = False, actor: str | None = None
) -> Report:
    """Check every model (or ``models``); with ``repair``, mend under each model's lock."""
    problems: list[Problem] = []
    for model in models if models is not None else kernel.models():
        try:
            kernel.existing(model)
            if repair:
                broken: list[BrokenLock] = []
                with kernel.locked(model, on_break=broken.append) as paths:
                    found = Check(kernel, paths, repair=True, actor=actor or default_actor()).run()
                found = [
                    *(("leftover", f"broke the stale soft-lock marker {b.describe()}", True) for b in broken),
                    *found,
                ]
                if kernel.lock_policy.kind != "soft":  # this repair did not take the soft lock
                    found = [*_stale_marker(kernel, paths), *found]
            else:
                paths = kernel.paths(model)
                found = [*_stale_marker(kernel, paths), *Check(kernel, paths, repair=False, actor="").run()]
        except ModelswapError as exc:  # a model verify cannot even look into (a symlink, say)
            problems.append(Problem(model, "unreadable", exc.message))
            continue
        problems += [Problem(model, kind, message, fixed) for kind, message, fixed in found]
    for problem in problems:
        logger.info("verify %s: %s%s", problem.model, problem.message, " (repaired)" if problem.repaired else "")
    return Report(tuple(problems))


def _stale_marker(kernel: Kernel, paths: ModelPaths) -> list[tuple[str, str, bool]]:
    """A soft-lock marker unchanged for longer than the stale time by its mtime: no live
    holder leaves its marker unrefreshed that long (a third of it at most), so its writer
    died. Only repair under the soft lock breaks it (by its own rule, see core.store.locking)."""
    marker = read_marker(soft_marker(paths.lock))
    stale = kernel.lock_policy.stale_after
    if marker is None or marker.age < stale:
        return []
    how = (
        "`verify --repair` breaks it"
        if kernel.lock_policy.kind == "soft"
        else "this process uses MODELSWAP_LOCK=flock, which never reads it: remove it if no writer of the store "
        "uses the soft lock, or run `verify --repair` with MODELSWAP_LOCK=soft"
    )
    return [("leftover", f"stale soft-lock marker {marker.describe()} (stale time {stale:g}s); {how}", False)]
