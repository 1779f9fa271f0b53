"""How many threads a model's own native code may use per call (OpenMP, BLAS).

scikit-learn's compiled estimators (HistGradientBoosting, pairwise distances, ...) and
numpy's BLAS size their thread pools to the machine's cores. A serving process has no
cores to spare: the event loop, the model's worker threads, the other workers and pods on
the node all want them, and an OpenMP team whose threads are not scheduled waits at its
barrier. On a 2-core VM under load a 1-row HistGradientBoosting predict took 23 ms with
two OpenMP threads and 1 ms with one. A server's parallelism comes from its workers and
from batching, so each call gets ``threads`` (MODELSWAP_MODEL_THREADS, 1 by default).

An OpenMP limit belongs to the thread that sets it, and reaches only the libraries loaded
by then, so :func:`apply` runs in the thread about to predict, once, and again after any
model load (:func:`loaded`: a new model may bring a new library). Finding the loaded
libraries is the dear part (4 ms: every shared object of the process is inspected), so it
is done in the thread that loads, and only after a load that imported modules (a native
library comes with the extension module that needs it; a server loading 100 versions of
the same kind of model finds them once, not 100 times), and a predicting thread only sets
the limits on what was found (under 0.1 ms): a call made on the event loop must not hold
it for the discovery. Otherwise :func:`apply` costs a comparison. Retraining jobs and
other child processes keep their own settings. Should threadpoolctl fail to inspect or
limit a library (a broken native library), models load and predict with their
libraries' own thread counts, and the log says so once.
"""

from __future__ import annotations

import logging
import sys
import threading

from threadpoolctl import ThreadpoolController

logger = logging.getLogger(__name__)


class _Unlimited:
    """Stands for the libraries when threadpoolctl could not inspect them: no limit is set."""

    def limit(self, *, limits: int) -> None:
        return None


# (generation, the libraries loaded by then, how many modules were imported then),
# replaced whole by a model load that imported modules; None: found by the first apply
# (nothing was loaded through the loader yet)
_found: list[tuple[int, ThreadpoolController | _Unlimited | None, int]] = [(0, None, 0)]
_lock = threading.Lock()
_local = threading.local()


def loaded() -> None:
    """A model was loaded: if it imported modules, find the native libraries now (in this
    thread), and the next call in every thread applies the limit again, to them."""
    modules = len(sys.modules)
    if _found[0][1] is not None and _found[0][2] == modules:
        return  # nothing imported since the libraries were found: no new library
    controller = _controller()
    with _lock:
        _found[0] = (_found[0][0] + 1, controller, modules)


def apply(threads: int) -> None:
    """Limit OpenMP (this thread) and BLAS (the process) to ``threads``, unless done already."""
    generation, controller, _ = _found[0]
    key = (generation, threads)
    if getattr(_local, "applied", None) != key:
        if controller is None:
            modules, controller = len(sys.modules), _controller()
            with _lock:
                if _found[0][0] == generation:
                    _found[0] = (generation, controller, modules)
        try:
            controller.limit(limits=threads)
        except Exception as exc:  # a library threadpoolctl cannot limit: its own thread count
            _unlimited(exc)
        _local.applied = key


_warned: list[bool] = [False]


def _controller() -> ThreadpoolController | _Unlimited:
    """The process's native libraries (threadpoolctl inspects every shared object loaded)."""
    try:
        return ThreadpoolController()
    except Exception as exc:  # a broken native library must not fail a model's load
        _unlimited(exc)
        return _Unlimited()


def _unlimited(exc: Exception) -> None:
    if not _warned[0]:
        _warned[0] = True
        logger.warning("models' native thread pools cannot be limited (threadpoolctl: %s: %s); "
                       "they use their libraries' own thread counts", type(exc).__name__, exc)  # fmt: skip
