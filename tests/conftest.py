"""Shared fixtures: real stores in tmp_path, real fitted models."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import joblib
import pytest

from modelswap.core.store.store import Store

ROOT = Path(__file__).resolve().parent.parent
IRIS_ROW = [6.0, 2.9, 4.5, 1.5]

# How long a thread started by a test may take to finish after it, and the threads that
# may outlive a test, by name prefix, each with why.
THREAD_GRACE_SECONDS = 2.0
ALLOWED_THREADS: dict[str, str] = {}


def _unexpected(before: set[threading.Thread]) -> list[threading.Thread]:
    return [
        t
        for t in threading.enumerate()
        if t not in before and t.is_alive() and not any(t.name.startswith(p) for p in ALLOWED_THREADS)
    ]


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a thread running: what it started it must stop (and join)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + THREAD_GRACE_SECONDS
    leaked = _unexpected(before)
    while leaked and time.monotonic() < deadline:
        time.sleep(0.02)
        leaked = _unexpected(before)
    if leaked:
        names = ", ".join(sorted(f"{t.name} ({getattr(t.__class__, '__qualname__', 'Thread')})" for t in leaked))
        pytest.fail(f"the test leaked {len(leaked)} thread(s) still running {THREAD_GRACE_SECONDS}s after it: {names}")


def fit_iris(max_iter: int = 1000, C: float = 1.0) -> Any:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    data = load_iris()
    return LogisticRegression(max_iter=max_iter, C=C).fit(data.data, data.target)


@pytest.fixture(scope="session")
def iris_a() -> Any:
    return fit_iris(C=1.0)


@pytest.fixture(scope="session")
def iris_b() -> Any:
    return fit_iris(C=0.01)


@pytest.fixture(scope="session")
def iris_file(tmp_path_factory: pytest.TempPathFactory, iris_a: Any) -> Path:
    path = tmp_path_factory.mktemp("files") / "iris.joblib"
    joblib.dump(iris_a, path)
    return path


class StepClock:
    """A clock that advances one second per call, so version ids and history sort."""

    def __init__(self, start: datetime | None = None) -> None:
        self._ticks = itertools.count()
        self._start = start or datetime(2026, 11, 23, 2, 0, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self._start + timedelta(seconds=next(self._ticks))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "models", clock=StepClock(), lock_timeout=10)


@pytest.fixture
def iris_pair(tmp_path: Path, iris_a: Any, iris_b: Any) -> tuple[Store, str, str]:
    """A store with model iris: version a (iris_a) live, version b (iris_b) published."""
    st = Store(tmp_path / "models", clock=StepClock())
    a, b = publish(st, iris_a), publish(st, iris_b)
    st.deploy("iris", a)
    return st, a, b


def publish(store: Store, estimator: Any, model: str = "iris", **kwargs: Any) -> str:
    kwargs.setdefault("example", [IRIS_ROW])
    kwargs.setdefault("metrics", {"accuracy": 0.9})
    return store.publish(model, estimator, **kwargs).id
