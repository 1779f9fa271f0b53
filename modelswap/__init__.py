"""modelswap: a filesystem-versioned scikit-learn model store and server with atomic hot swap.

Publish from training code, deploy, roll back, and read the registry in process::

    import modelswap

    store = modelswap.Store("./models")
    v = store.publish("churn", estimator, metrics={"f1": 0.91}, example=X[:5], reference=X)
    store.deploy("churn", v.id, reason="better f1")
    store.rollback("churn")

or talk to a running server with ``modelswap.Client(url, token)``.
"""

from modelswap.api.client import Client, RemoteError
from modelswap.core.errors import (
    Conflict,
    InvalidInput,
    ModelswapError,
    NoReferenceWarning,
    NotFound,
    NothingToRollBack,
    StoreBusy,
    ValidationFailed,
)
from modelswap.core.store.outcomes import GcPlan, Transition
from modelswap.core.store.registry import HistoryEntry, Version
from modelswap.core.store.store import Store

__all__ = [
    "Client",
    "Conflict",
    "GcPlan",
    "HistoryEntry",
    "InvalidInput",
    "ModelswapError",
    "NoReferenceWarning",
    "NotFound",
    "NothingToRollBack",
    "RemoteError",
    "Store",
    "StoreBusy",
    "Transition",
    "ValidationFailed",
    "Version",
]
