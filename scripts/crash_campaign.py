"""kill -9 campaign: SIGKILL every writer operation of the store at uniformly drawn instants.

    .venv/bin/python scripts/crash_campaign.py [--kills 1000] [--lock flock|soft|both] [--stale 2]
                                               [--same-host] [--seed N] [--root DIR] [--json]

Each round prepares the store (in this process, un-killed) so that one writer op, drawn
in turn from scripts/crash_ops.py (publish, deploy, rollback with and without a target,
canary start/stop/abort/promote, delete, gc, alias set/delete, the migration of a
format 1 index that the first writer does, and ``verify --repair`` itself), has real
work to do; forks a worker that runs it; kills the worker with SIGKILL;
checks the invariants of scripts/crash_invariants.py; runs ``verify --repair``; checks
them again (and that verify is then clean and history's last live version is current).

The kill instant. Every op is first timed un-killed (five runs each): its span (from the
worker's "begin" to its return) and its commit window (from its first journal append to
its return: the journal's write and fsync, the symlink rename or file writes and their
directory fsyncs, the index rewrite, the trash removal). Each kill then draws u uniformly
from [0, 1.25 x median span] after the worker's "begin" (half of the kills) or from
[0, 1.25 x median window] after its first journal append (the other half), both instants
read from CLOCK_MONOTONIC, which the worker and the campaign share. So every instant of
every op is drawn with a positive density, the short commit windows (a few ms inside ops
that validate a model for tens of ms) get half the kills instead of a few per cent, and
the margin covers slower runs and the moment just after the op (the median, not the
maximum: one run slowed by a neighbour would otherwise send most kills past the end).
The worker reports each step on a pipe as it takes it, so the summary says where each
kill landed: before the journal ("prepare"; "taking the lock" while the op
takes the model's lock), during the append and its fsync
("journal"), while the journaled change is made ("effect"), after it ("index,
cleanup") or after the op returned ("finished").
SIGKILL stops a process, not the machine: what the fsyncs buy against a power cut is
beyond what a kill can show; a kill landing inside an fsync is covered like any instant.

The lock. The campaign runs with each writers' lock (``--lock both``, the default: one
campaign of ``--kills`` kills per kind, each on a fresh store). With ``flock`` the
kernel drops a killed worker's lock. With ``soft`` (stale time ``--stale``, 2 s) a
worker killed while it holds the lock leaves its marker (``.softlock``), which the next
writer breaks: at once if its holder ran on this host and is gone, after the stale time
otherwise. Where the campaign may (CAP_SYS_ADMIN), each worker runs in a UTS namespace
of its own under a host name of its own, so its markers are another host's, as a pod's
are to the next pod, and only the stale time frees them (``--same-host`` keeps them on
this host, where a dead holder's marker is taken over at once); the summary says which.
A kill between the marker's creation and its record leaves it empty (broken after the
stale time, as any): with ``soft`` a third of the kills (instead of half in each of the
other two ways) draw u from [0, 1.25 x the op's median time to take the lock] after it
starts taking it, so kills land as the marker is created, before and after its record is
written (the summary counts the markers left by what they held). After each kill the
campaign notes the marker left, if any; the repair that follows must break it (a logged
break, counted), and after it no marker and no debris of a break may remain. A killed
repair is preceded by a killed op, whose marker the campaign breaks first (keeping the
damage), so that the repair has its work, not a stale-time wait, to be killed in.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import select
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crash_ops import Act

    from modelswap.core.store.store import Store

PHASES = {
    "": "starting",
    "B": "prepare",
    "L": "taking the lock",
    "H": "prepare",  # holding the lock, not yet journaling
    "J": "journal",
    "C": "effect",
    "E": "index, cleanup",
    "D": "finished",
}
SPAN_MARGIN = 1.25
CALIBRATION_RUNS = 5
LOCK_KINDS = ("flock", "soft")
SOFT_STALE_SECONDS = 2.0


class LockBreaks(logging.Handler):
    """Counts the warnings core.store.locking logs when it breaks a stale soft-lock marker."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("broke the stale soft-lock marker"):
            self.count += 1


@dataclass
class Outcome:
    """What one worker did before it was killed."""

    op: str
    mode: str
    phase: str
    late_ns: int
    markers: list[tuple[str, str]]


@dataclass
class Campaign:
    root: Path
    model_file: Path
    rng: random.Random
    returned: set[str] = field(default_factory=set)
    journal: bytes = b""
    span: dict[str, int] = field(default_factory=dict)  # ns
    window: dict[str, int] = field(default_factory=dict)  # ns
    take: dict[str, int] = field(default_factory=dict)  # ns: from starting to take the lock to holding it
    kills: list[Outcome] = field(default_factory=list)
    repairs: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    lock: str = "flock"
    stale: float = SOFT_STALE_SECONDS  # the soft lock's stale time
    other_hosts: bool = False  # soft lock: each worker runs as a host of its own
    breaks: LockBreaks = field(default_factory=LockBreaks)
    left: Counter[str] = field(default_factory=Counter)  # soft-lock markers left by kills, by what they held
    workers: int = 0

    def store(self) -> Store:
        from modelswap.core.store.store import Store

        return Store(self.root, lock_kind=self.lock, lock_stale_after=self.stale, lock_timeout=30)

    # -- one worker -------------------------------------------------------------------
    def run(self, op: str, act: Act, mode: str) -> Outcome:
        """Fork a worker running ``act`` and SIGKILL it: in mode ``op`` at a uniform instant of
        the op's span, in ``window`` of its commit window, in ``lock`` of its taking the lock,
        in ``calibrate`` once it returned."""
        from crash_ops import run_worker

        _no_other_threads()
        self.workers += 1
        host = f"crash-worker-{self.workers}" if self.other_hosts else None
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            run_worker(self.store, act, write_fd, host)
        os.close(write_fd)
        buffer = bytearray()
        markers: list[tuple[str, str]] = []

        def wait_for(wanted: str) -> int | None:
            """Read until marker ``wanted`` (its time) or the op's end (None)."""
            while True:
                for kind, rest in markers:
                    if kind == wanted:
                        return int(rest.split()[0])
                if any(kind in ("D", "X") for kind, _ in markers) and wanted != "D":
                    return None
                ready, _, _ = select.select([read_fd], [], [], 120)
                chunk = os.read(read_fd, 65536) if ready else b""
                if not chunk:
                    raise RuntimeError(f"worker for {op} went silent or died: {bytes(buffer[-200:])!r}")
                buffer.extend(chunk)
                *lines, tail = bytes(buffer).split(b"\n")
                buffer[:] = tail
                markers[:] = [*markers, *(_marker(line) for line in lines)]

        try:
            if mode == "calibrate":
                start = wait_for("D")
                deadline = time.monotonic_ns()
            else:
                start = wait_for({"op": "B", "window": "J", "lock": "L"}[mode])
                span = {"op": self.span, "window": self.window, "lock": self.take}[mode][op]
                deadline = (start or time.monotonic_ns()) + int(self.rng.uniform(0, span))
                pause = deadline - time.monotonic_ns()
                if pause > 0:
                    time.sleep(pause / 1e9)
            killed = time.monotonic_ns()
            os.kill(pid, signal.SIGKILL)
        finally:
            _, status = os.waitpid(pid, 0)
        while chunk := os.read(read_fd, 65536):
            buffer.extend(chunk)
        os.close(read_fd)
        markers += [_marker(line) for line in bytes(buffer).split(b"\n") if line]
        if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
            self.failures.append(f"{op}: the worker died on its own (status {status})")
        self.returned.update(rest for kind, rest in markers if kind == "P")
        for kind, rest in markers:
            if kind == "X":
                self.refusals[f"{op}: {rest.split(':')[0]}"] += 1
        last = next((kind for kind, _ in reversed(markers) if kind in PHASES), "")
        return Outcome(op, mode, PHASES[last], max(0, killed - deadline), markers)

    # -- one round --------------------------------------------------------------------
    def prepare(self, op: str) -> Act:
        from crash_ops import MAX_VERSIONS, MODEL, OPS, Setup

        setup = Setup(self.store(), self.rng, self.model_file, self.returned)
        if len(setup.ids()) > MAX_VERSIONS:
            setup.store.gc(MODEL, 3, actor="campaign")
        act = OPS[op](setup)
        if op == "migrate":  # the journal was folded back into versions.json: it starts anew
            self.journal = b""
        return act

    def kill(self, op: str) -> None:
        from crash_ops import WHOLE_OP_ONLY

        modes = ["op"] if op in WHOLE_OP_ONLY else ["op", "window"]
        if self.lock == "soft":  # a kill as the marker is created, before or after its record is written
            modes.append("lock")
        mode = self.rng.choice(modes)
        if op == "repair":  # damage first, so that the repair being killed has work to do
            other = self.rng.choice([name for name in self.span if name not in WHOLE_OP_ONLY])
            self.kills.append(self.run(other, self.prepare(other), "window"))
            self.check(f"kill {len(self.kills)} ({other}, before a killed repair)", repaired=False)
            self.free_lock(f"kill {len(self.kills)} ({other}, before a killed repair)")
        outcome = self.run(op, self.prepare(op), mode)
        self.kills.append(outcome)
        self.settle(f"kill {len(self.kills)} ({op}, {mode}, {outcome.phase})")

    def check(self, label: str, *, repaired: bool) -> None:
        from crash_invariants import check
        from crash_ops import MODEL

        found = check(self.root, MODEL, self.returned, self.journal, repaired=repaired)
        self.failures += [f"{label}, {'after' if repaired else 'before'} repair: {f}" for f in found]

    def settle(self, label: str) -> None:
        """Invariants, verify --repair, invariants again; remember the journal."""
        from crash_invariants import journal_bytes
        from crash_ops import MODEL

        from modelswap.core.store.verify import verify_store

        self.check(label, repaired=False)
        left, breaks = self.lock_marker_left(), self.breaks.count
        report = verify_store(self.store(), repair=True, actor="campaign")
        for problem in report.problems:
            marker = problem.message.startswith("broke the stale soft-lock marker")
            self.repairs[f"{problem.kind} (lock marker)" if marker else problem.kind] += 1
            if not problem.repaired:
                self.failures.append(f"{label}: repair could not mend {problem.kind}: {problem.message}")
        self.check(label, repaired=True)
        self.check_lock_freed(label, left, breaks)
        self.journal = journal_bytes(self.store().paths(MODEL))

    # -- the soft lock's marker ---------------------------------------------------------
    def lock_marker_left(self) -> bool:
        """Whether a marker is at the soft lock's place (no worker runs now), counted by
        what it holds."""
        from crash_ops import MODEL

        from modelswap.core.store.locking import read_marker, soft_marker

        if self.lock != "soft":
            return False
        marker = read_marker(soft_marker(self.store().paths(MODEL).lock))
        if marker is not None:
            self.left[marker.state] += 1
        return marker is not None

    def check_lock_freed(self, label: str, left: bool, breaks_before: int) -> None:
        """After a repair or a campaign's break: a marker that was left was broken, with its
        warning; no marker and no debris of a break remain."""
        from crash_ops import MODEL

        from modelswap.core.store.locking import SOFT_LOCK_FILE

        if self.lock != "soft":
            return
        if left and self.breaks.count == breaks_before:
            self.failures.append(f"{label}: leftover: the soft-lock marker left by the kill was freed unlogged")
        directory = self.store().paths(MODEL).dir
        remains = sorted(p.name for p in directory.iterdir() if p.name.startswith(SOFT_LOCK_FILE))
        if remains:
            self.failures.append(f"{label}: leftover: {', '.join(remains)} remain once the lock is free")

    def free_lock(self, label: str) -> None:
        """Soft lock: break the marker a kill left (after the stale time), the damage kept."""
        from crash_ops import MODEL

        from modelswap.core.store.locking import hold

        left, breaks = self.lock_marker_left(), self.breaks.count
        if not left:
            return
        store = self.store()
        with hold(store.paths(MODEL).lock, store.lock_policy):
            pass
        self.check_lock_freed(label, left, breaks)

    def calibrate(self) -> None:
        from crash_ops import OPS

        for op in OPS:
            spans, windows, takes = [], [], []
            for _ in range(CALIBRATION_RUNS):
                outcome = self.run(op, self.prepare(op), "calibrate")
                times = {kind: int(rest.split()[0]) for kind, rest in reversed(outcome.markers) if kind in "BLHJD"}
                spans.append(times["D"] - times["B"])
                windows.append(times["D"] - times.get("J", times["B"]))
                takes.append(times.get("H", times["D"]) - times.get("L", times["B"]))  # the first lock taken
                self.settle(f"calibration of {op}")
            self.span[op] = int(statistics.median(spans) * SPAN_MARGIN)
            self.window[op] = int(statistics.median(windows) * SPAN_MARGIN)
            self.take[op] = int(statistics.median(takes) * SPAN_MARGIN)

    def campaign(self, kills: int) -> None:
        self.calibrate()
        order: list[str] = []
        while len(self.kills) < kills:
            if not order:
                order = list(self.span)
                self.rng.shuffle(order)
            self.kill(order.pop())


def _no_other_threads() -> None:
    """The workers are forked: this process must hold no other thread (a soft lock's
    heartbeat ends as its lock is released; give it a moment)."""
    deadline = time.monotonic() + 5
    while threading.active_count() > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    if threading.active_count() > 1:
        raise RuntimeError(f"threads alive before a fork: {threading.enumerate()}")


def can_run_as_other_host() -> bool:
    """Whether a forked worker can take a UTS namespace of its own (crash_ops.become_host)."""
    from crash_ops import become_host

    pid = os.fork()
    if pid == 0:
        try:
            become_host("crash-probe")
        except OSError:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def _marker(line: bytes) -> tuple[str, str]:
    kind, _, rest = line.decode(errors="replace").partition(" ")
    return kind, rest


def summary(campaign: Campaign, seconds: float, seed: int) -> dict[str, Any]:
    ops: dict[str, Any] = {}
    for op in campaign.span:
        mine = [k for k in campaign.kills if k.op == op]
        ops[op] = {
            "span_ms": round(campaign.span[op] / 1e6, 2),
            "window_ms": round(campaign.window[op] / 1e6, 2),
            "lock_ms": round(campaign.take[op] / 1e6, 3),
            "kills": len(mine),
            "phases": dict(Counter(k.phase for k in mine)),
            "refused": sum(n for key, n in campaign.refusals.items() if key.startswith(op + ":")),
        }
    late = [k.late_ns for k in campaign.kills if k.late_ns > 1_000_000]
    return {
        "lock": campaign.lock,
        **(
            {
                "stale_seconds": campaign.stale,
                "holders": "other hosts (a UTS namespace each)" if campaign.other_hosts else "this host",
                "lock_markers_left": dict(sorted(campaign.left.items())),
                "lock_breaks_logged": campaign.breaks.count,
            }
            if campaign.lock == "soft"
            else {}
        ),
        "kills": len(campaign.kills),
        "seconds": round(seconds, 1),
        "seed": seed,
        "by_op": ops,
        "by_phase": dict(Counter(k.phase for k in campaign.kills)),
        "late_kills": {"over_1ms": len(late), "worst_ms": round(max(late, default=0) / 1e6, 2)},
        "repairs": dict(sorted(campaign.repairs.items())),
        "refusals": dict(sorted(campaign.refusals.items())),
        "invariant_failures": len(campaign.failures),
        "failures": campaign.failures[:50],
    }


def render(data: dict[str, Any]) -> str:
    phases = list(dict.fromkeys(PHASES.values()))[1:]
    lock = data["lock"]
    if lock == "soft":
        left = ", ".join(f"{state} {n}" for state, n in data["lock_markers_left"].items()) or "none"
        lock += (
            f" (stale time {data['stale_seconds']:g} s, workers as {data['holders']}); markers left by kills:"
            f" {left}; breaks logged: {data['lock_breaks_logged']}"
        )
    lines = [
        f"crash campaign: {data['kills']} kills in {data['seconds']} s (seed {data['seed']})",
        f"lock: {lock}",
        "instants: uniform over [0, 1.25 x span] from the op's start, or [0, 1.25 x window] from its first journal"
        " append"
        + (
            " (half each)"
            if data["lock"] != "soft"
            else ", or [0, 1.25 x lock] from its starting to take the lock (a third each)"
        ),
        f"{'op':<15}{'span ms':>9}{'window ms':>11}{'lock ms':>9}{'kills':>7}  "
        + "".join(f"{p:>16}" for p in phases)
        + "  refused",
    ]
    for op, row in data["by_op"].items():
        cells = "".join(f"{row['phases'].get(p, 0):>16}" for p in phases)
        lines.append(
            f"{op:<15}{row['span_ms']:>9}{row['window_ms']:>11}{row['lock_ms']:>9}{row['kills']:>7}  {cells}"
            f"  {row['refused']:>7}"
        )
    lines.append(f"{'all':<51}" + "".join(f"{data['by_phase'].get(p, 0):>16}" for p in phases))
    late = data["late_kills"]
    lines.append(f"kills more than 1 ms after their drawn instant: {late['over_1ms']} (worst {late['worst_ms']} ms)")
    lines.append("repairs by kind: " + (", ".join(f"{k} {n}" for k, n in data["repairs"].items()) or "none"))
    if data["refusals"]:
        lines.append("ops refused (nothing to kill): " + ", ".join(f"{k} {n}" for k, n in data["refusals"].items()))
    lines.append(f"invariant failures: {data['invariant_failures']}")
    lines += [f"  {failure}" for failure in data["failures"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=1000, help="SIGKILLs to deliver per lock kind (default 1000)")
    parser.add_argument("--lock", choices=[*LOCK_KINDS, "both"], default="both", help="writers' lock (default both)")
    parser.add_argument(
        "--stale",
        type=float,
        default=SOFT_STALE_SECONDS,
        help=f"soft lock's stale time (default {SOFT_STALE_SECONDS:g} s)",
    )
    parser.add_argument(
        "--same-host",
        action="store_true",
        help="soft lock: workers run as this host even where they could run as others",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: drawn and printed)")
    parser.add_argument("--root", type=Path, default=None, help="work directory (default: a temp dir, removed)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    # The workers are forked from this process, which must hold no thread when it forks.
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = "1"
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    kinds = LOCK_KINDS if args.lock == "both" else (args.lock,)
    work = args.root or Path(tempfile.mkdtemp(prefix="crash-campaign-"))
    work.mkdir(parents=True, exist_ok=True)
    breaks = LockBreaks()
    logging.getLogger("modelswap.core.store.locking").addHandler(breaks)  # counted here, not printed
    results: dict[str, dict[str, Any]] = {}
    try:
        model_file = _model_file(work)
        other_hosts = "soft" in kinds and not args.same_host and can_run_as_other_host()
        for kind in kinds:
            started = time.monotonic()
            campaign = Campaign(
                work / kind / "models",
                model_file,
                random.Random(seed),
                lock=kind,
                stale=args.stale,
                other_hosts=other_hosts and kind == "soft",
                breaks=breaks,
            )
            breaks.count = 0
            campaign.campaign(args.kills)
            results[kind] = summary(campaign, time.monotonic() - started, seed)
    finally:
        logging.getLogger("modelswap.core.store.locking").removeHandler(breaks)
        if args.root is None:
            shutil.rmtree(work, ignore_errors=True)
    failures = sum(data["invariant_failures"] for data in results.values())
    if args.json:
        print(json.dumps({"campaigns": results, "invariant_failures": failures}, indent=2))
    else:
        print("\n\n".join(render(data) for data in results.values()))
    return 1 if failures else 0


def _model_file(work: Path) -> Path:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    data = load_iris()
    path = work / "iris.joblib"
    joblib.dump(LogisticRegression(max_iter=1000).fit(data.data, data.target), path)
    return path


if __name__ == "__main__":
    sys.exit(main())
