"""Validate a staged model file in a child process with a time and a memory limit.

An upload is the one way a model file reaches the server from outside. Before the
server process loads it, :class:`Sandbox` runs :func:`main` in a new Python process:
the child reads an inspection request (JSON on stdin), limits itself (address space,
CPU time, file size, no core dump, first in line for the OOM killer), loads the model
and predicts its example and reference rows (:func:`modelswap.core.store.inspection.inspect_model`, the whole of
what publishing learns from the file), and answers with one JSON object on stdout.
The parent waits at most ``timeout`` seconds, then kills the child's process group; a
child that hangs, runs out of memory, crashes or answers nonsense refuses the upload.

It bounds a misbehaving model's time and memory; it is no security boundary for a
pickle, whose code runs in the child with the server's user and filesystem. skops files,
which load only trusted types, are what makes an upload safe to load at all.
"""

from __future__ import annotations

import ctypes
import math
import os
import resource
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from modelswap.core.errors import InvalidInput, ModelswapError, UntrustedTypes, ValidationFailed
from modelswap.core.schema.signature import Signature
from modelswap.core.settings import Settings
from modelswap.core.store.formats import SKOPS
from modelswap.core.store.inspection import Inspection, InspectRequest, inspect_model

MiB = 1024**2
# the child's answer is a signature, a few example rows, and a reference profile (about
# 20 kB per numeric column: its sample of 1,000 numbers)
ANSWER_LIMIT = 64 * MiB
# Starting Python and importing scikit-learn (and skops: every estimator) takes seconds;
# the validation timeout counts from when the child is ready to load the model.
STARTUP_LIMIT = 120.0
EXIT_GRACE = 5.0  # an answered child that has not exited by then is killed and refused
READY = b"\x06"
PR_SET_PDEATHSIG = 1
STARTING, RUNNING, DONE = "starting", "running", "done"
# The child's program (not ``-m``: the package imports this module before running it);
# its one argument is the server's pid.
CHILD = "import sys; from modelswap.core.store.sandbox import main; sys.exit(main())"
FILE_LIMIT = 64 * MiB  # RLIMIT_FSIZE: the child has no file of its own to write
# The child's environment: the server's, without its settings (the admin token among
# them) and its metrics directory; one BLAS thread (a few rows, and less address space).
PRIVATE_ENV_PREFIXES = ("MODELSWAP_", "PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of one validation child (``MODELSWAP_UPLOAD_VALIDATION_*``)."""

    timeout: float = 60.0  # seconds of wall time, load and predict together
    memory: int = 4 * 1024**3  # bytes of address space (RLIMIT_AS), interpreter included


@dataclass(frozen=True)
class UploadPolicy:
    """What an upload over HTTP may be: skops always, a pickle only when allowed; and the
    limits its validation runs under."""

    allow_pickle: bool = False
    limits: SandboxLimits = SandboxLimits()

    @classmethod
    def from_settings(cls, settings: Settings) -> UploadPolicy:
        limits = SandboxLimits(settings.upload_validation_timeout, settings.upload_validation_memory)
        return cls(allow_pickle=settings.allow_pickle_uploads, limits=limits)


class Sandbox:
    """An inspector (see :func:`modelswap.core.store.publish.stage_version`) that never loads
    the model in this process."""

    def __init__(self, limits: SandboxLimits) -> None:
        self.limits = limits

    def __call__(self, request: InspectRequest) -> Inspection:
        payload = _request_payload(request, self.limits)
        with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as err:
            stdin.write(payload)
            stdin.seek(0)
            proc = subprocess.Popen(
                [sys.executable, "-c", CHILD, str(os.getpid())],
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=err,
                env=child_env(),
                start_new_session=True,  # its own process group: killed whole
                close_fds=True,
            )
            try:
                assert proc.stdout is not None
                phase, answer = _read_answer(proc.stdout.fileno(), self.limits.timeout)
                if phase == DONE and not _wait_unreaped(proc.pid, EXIT_GRACE):
                    phase = RUNNING  # it answered, then would not exit
            finally:
                _kill_group(proc.pid)  # leftovers of a finished child; all of a timed-out one
                proc.wait()
                if proc.stdout is not None:
                    proc.stdout.close()
            if phase == STARTING:
                raise ValidationFailed(
                    f"{request.label}: the validation process did not start within {STARTUP_LIMIT:g} s{_said(err)}"
                )
            if phase == RUNNING:
                raise ValidationFailed(
                    f"{request.label}: validation timed out after {self.limits.timeout:g} s (loading the model "
                    "and predicting its example did not finish; MODELSWAP_UPLOAD_VALIDATION_TIMEOUT)"
                )
            return _verdict(request.label, proc.returncode, answer, _said(err), self.limits)


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(PRIVATE_ENV_PREFIXES)}
    for name, value in ONE_THREAD.items():
        env.setdefault(name, value)
    # the server's import path: the child imports what a load in the server would
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def _request_payload(request: InspectRequest, limits: SandboxLimits) -> bytes:
    body = {
        "model_file": str(request.model_file),
        "model_format": request.model_format,
        "label": request.label,
        "example": request.example,
        "fallback_example": request.fallback_example,
        "signature": request.signature.to_dict() if request.signature is not None else None,
        "trusted_types": list(request.trusted_types),
        "reference": request.reference,
        "memory": limits.memory,
        "timeout": limits.timeout,
    }
    try:
        return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError as exc:
        raise InvalidInput(
            f"the input example and the reference must be JSON (records or rows) to validate an upload: {exc}"
        ) from exc


def _read_answer(fd: int, timeout: float) -> tuple[str, bytes]:
    """Read the child's stdout to its end: (phase reached, answer). The child writes
    READY once it has started and limited itself: ``timeout`` runs from then on."""
    os.set_blocking(fd, False)
    data = bytearray()
    phase, deadline = STARTING, time.monotonic() + STARTUP_LIMIT
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                return phase, b""
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return (DONE, bytes(data)) if phase == RUNNING else (DONE, b"")
            data += chunk
            if phase == STARTING and data[:1] == READY:
                phase, deadline = RUNNING, time.monotonic() + timeout
                del data[:1]
            if len(data) > ANSWER_LIMIT:
                return DONE, b""  # no answer is that long: nonsense


def _wait_unreaped(pid: int, timeout: float) -> bool:
    """Wait for the child to exit, leaving it a zombie (its pid, and so its process group
    id, cannot be reused before we kill the group); False on timeout."""
    deadline = time.monotonic() + timeout
    pause = 0.002
    while True:
        status = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if status is not None:
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(pause, left))
        pause = min(pause * 2, 0.05)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _said(err: IO[bytes], size: int = 2000) -> str:
    """The last lines the child wrote to stderr, for the error message."""
    end = err.seek(0, os.SEEK_END)
    err.seek(max(0, end - size))
    lines = [line for line in err.read().decode(errors="replace").splitlines() if line.strip()]
    tail = " | ".join(lines[-3:])[-500:]
    return f" (its last words: {tail})" if tail else ""


def _verdict(label: str, returncode: int, answer: bytes, said: str, limits: SandboxLimits) -> Inspection:
    if returncode < 0:
        sig = -returncode
        if sig == signal.SIGXCPU:
            raise ValidationFailed(f"{label}: validation used more than its CPU time and was stopped{said}")
        if sig == signal.SIGKILL:
            raise ValidationFailed(
                f"{label}: the validation process was killed (SIGKILL), most likely for exceeding "
                f"the memory available{said}"
            )
        raise ValidationFailed(f"{label}: the validation process crashed ({signal.Signals(sig).name}){said}")
    try:
        data = orjson.loads(answer) if answer else None
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise ValidationFailed(f"{label}: the validation process exited with status {returncode} and no answer{said}")
    if data.get("ok") is True:
        try:
            return Inspection.from_dict(data.get("inspection") or {})
        except ValueError as exc:
            raise ValidationFailed(f"{label}: the validation process answered nonsense: {exc}") from exc
    message = str(data.get("message") or "validation failed")
    kind = data.get("kind")
    if kind == "memory":
        raise ValidationFailed(
            f"{label}: validation exceeded the memory limit of {limits.memory // MiB} MiB "
            f"(MODELSWAP_UPLOAD_VALIDATION_MEMORY): {message}"
        )
    if kind == "untrusted":
        types = tuple(str(t) for t in data.get("types") or ())
        raise UntrustedTypes(message, types)
    if kind == InvalidInput.code:
        raise InvalidInput(message)
    raise ValidationFailed(message)


# -- the child -------------------------------------------------------------------------
def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when the server thread that started it ends (Linux), so a
    validation never outlives a server that stopped while waiting for it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the parent's kill is the only stop
        return
    if os.getppid() != parent:  # the parent was gone before the prctl
        os._exit(1)


def _limit_self(memory: int, timeout: float) -> None:
    def lower(which: int, value: int, slack: int = 0) -> None:
        _soft, hard = resource.getrlimit(which)
        ceiling = value + slack if hard == resource.RLIM_INFINITY else min(value + slack, hard)
        # the hard limit too: the model cannot raise it again (without CAP_SYS_RESOURCE)
        resource.setrlimit(which, (min(value, ceiling), ceiling))

    lower(resource.RLIMIT_AS, memory)
    used = resource.getrusage(resource.RUSAGE_SELF)
    # a backstop should the parent be gone: it kills the child at ``timeout`` of wall time
    lower(resource.RLIMIT_CPU, math.ceil(used.ru_utime + used.ru_stime + timeout) + 5, slack=1)
    lower(resource.RLIMIT_FSIZE, FILE_LIMIT)
    lower(resource.RLIMIT_CORE, 0)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead
    try:  # if memory runs out under a container's limit, the kernel kills this process first
        Path("/proc/self/oom_score_adj").write_text("1000")
    except OSError:
        pass


def _failure(exc: BaseException, label: str) -> dict[str, Any]:
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    memory = [e for e in chain if isinstance(e, MemoryError)]
    if memory:
        return {"ok": False, "kind": "memory", "message": f"{type(memory[0]).__name__}: {memory[0]}"}
    if isinstance(exc, UntrustedTypes):
        return {"ok": False, "kind": "untrusted", "message": exc.message, "types": list(exc.types)}
    if isinstance(exc, ModelswapError):
        kind = InvalidInput.code if isinstance(exc, InvalidInput) else ValidationFailed.code
        return {"ok": False, "kind": kind, "message": exc.message}
    return {"ok": False, "kind": "error", "message": f"{label}: {type(exc).__name__}: {exc}"}


def main() -> int:
    """The child: one request on stdin, one answer on stdout (fd 1 is the answer's alone:
    anything the model prints goes to stderr)."""
    _die_with_parent(parent=int(sys.argv[1]))
    answer_fd = os.dup(1)
    os.dup2(2, 1)
    request = orjson.loads(sys.stdin.buffer.read())
    label = str(request["label"])
    if request["model_format"] == SKOPS:
        import skops.io  # noqa: F401  (imported before the limit: seconds and ~200 MiB of scikit-learn)
    _limit_self(int(request["memory"]), float(request["timeout"]))
    os.write(answer_fd, READY)
    try:
        signature = request["signature"]
        seen = inspect_model(
            InspectRequest(
                model_file=Path(request["model_file"]),
                model_format=str(request["model_format"]),
                label=label,
                example=request["example"],
                fallback_example=request["fallback_example"],
                signature=Signature.from_dict(signature) if signature is not None else None,
                trusted_types=tuple(request["trusted_types"]),
                reference=request.get("reference"),
            )
        )
        answer: dict[str, Any] = {"ok": True, "inspection": seen.to_dict()}
    except BaseException as exc:  # everything the model does wrong is an answer
        answer = _failure(exc, label)
    with os.fdopen(answer_fd, "wb") as out:
        out.write(orjson.dumps(answer))
    return 0
