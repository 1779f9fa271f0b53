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
model load (:func:`loaded`: a new model may bring a new library). Otherwise it costs a
comparison. Retraining jobs and other child processes keep their own settings.
"""

from __future__ import annotations

import threading

from threadpoolctl import threadpool_limits

_generation = [0]  # bumped by every model load
_local = threading.local()


def loaded() -> None:
    """A model was loaded: the next call in every thread applies the limit again."""
    _generation[0] += 1


def apply(threads: int) -> None:
    """Limit OpenMP (this thread) and BLAS (the process) to ``threads``, unless done already."""
    key = (_generation[0], threads)
    if getattr(_local, "applied", None) != key:
        threadpool_limits(limits=threads)
        _local.applied = key
