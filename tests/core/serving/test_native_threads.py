"""A model's native code gets MODELSWAP_MODEL_THREADS threads in the thread that predicts."""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sklearn.ensemble  # noqa: F401  (loads scikit-learn's OpenMP runtime, as an HGB model does)
from threadpoolctl import threadpool_info

from modelswap.core.serving import native_threads
from modelswap.core.serving.batching import Batcher
from modelswap.core.serving.threads import ModelThreads


def openmp_threads() -> int:
    """What OpenMP would give a parallel region started by the calling thread now."""
    [openmp] = [lib for lib in threadpool_info() if lib["user_api"] == "openmp"][:1]
    return int(openmp["num_threads"])


def in_thread(fn: Any) -> Any:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result()


def test_apply_limits_openmp_in_the_calling_thread_once_per_model_load(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))

    def a_load_that_imports(module: str) -> None:  # as unpickling a new kind of model does
        (tmp_path / f"{module}.py").write_text("")
        importlib.import_module(module)
        native_threads.loaded()

    def limited(threads: int) -> tuple[int, int]:
        native_threads.apply(threads)
        return openmp_threads(), threading.get_ident()

    assert in_thread(lambda: limited(3))[0] == 3
    assert in_thread(lambda: limited(1))[0] == 1
    found: list[str] = []  # the threads that inspected the process's libraries
    limited_to: list[tuple[int, str]] = []  # the limits set, and in which thread
    real = native_threads.ThreadpoolController

    class Counted(real):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            found.append(threading.current_thread().name)
            super().__init__()

        def limit(self, *, limits: int) -> Any:
            limited_to.append((limits, threading.current_thread().name))
            return super().limit(limits=limits)

    monkeypatch.setattr(native_threads, "ThreadpoolController", Counted)
    a_load_that_imports("native_threads_first_load")  # a model load in this thread

    def twice_then_after_a_load() -> str:
        native_threads.apply(2)
        native_threads.apply(2)  # done already: not again
        a_load_that_imports("native_threads_second_load")  # a model load may have brought a new library
        native_threads.apply(2)
        return threading.current_thread().name

    name = in_thread(twice_then_after_a_load)
    assert limited_to == [(2, name), (2, name)]
    assert found == ["MainThread", name]  # by the loads: a predicting thread only sets the limits
    limited_to.clear()
    other = in_thread(lambda: (native_threads.apply(2), threading.current_thread().name)[1])
    assert limited_to == [(2, other)]
    assert found == ["MainThread", name]  # another thread uses what the last load found
    assert in_thread(lambda: limited(4))[0] == 4
    limited_to.clear()
    native_threads.loaded()  # a load that imported nothing (another version of a model served): no new library
    assert in_thread(lambda: (native_threads.apply(2), native_threads.apply(2))) and found == ["MainThread", name]
    assert len(limited_to) == 1  # that new thread's own limits, once, on what was found before


def test_a_batchers_worker_thread_predicts_with_the_configured_threads() -> None:
    seen: list[int] = []

    def model(X: np.ndarray) -> Any:
        seen.append(openmp_threads())
        return X.sum(axis=1)

    async def main(pool: ModelThreads) -> None:
        for threads in (1, 3):
            await Batcher(model, pool, threads=threads).submit(np.ones((1, 4)))

    pool = ModelThreads(1, "predict-test")
    try:
        asyncio.run(main(pool))
    finally:
        pool.close()
    assert seen == [1, 3]


@pytest.mark.parametrize("fails", ["inspecting", "limiting"])
def test_a_library_threadpoolctl_cannot_handle_leaves_models_loading_and_predicting(
    fails: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A broken native library (threadpoolctl raising as it inspects or limits it) neither
    fails a model's load nor its calls: they run with the libraries' own thread counts,
    and the log says so once."""

    class Broken:
        def __init__(self) -> None:
            if fails == "inspecting":
                raise OSError("libbroken.so: cannot read its symbols")

        def limit(self, *, limits: int) -> None:
            raise OSError("libbroken.so: cannot read its symbols")

    monkeypatch.setattr(native_threads, "ThreadpoolController", Broken)
    monkeypatch.setattr(native_threads, "_found", [(0, None, 0)])
    monkeypatch.setattr(native_threads, "_warned", [False])

    async def predict() -> Any:
        executor = ModelThreads(1, "predict-broken")
        try:
            batcher = Batcher(lambda X: X.sum(axis=1), executor, threads=1)
            return [await batcher.submit(np.ones((2, 3))) for _ in range(3)]
        finally:
            executor.close()

    with caplog.at_level(logging.WARNING, logger="modelswap.core.serving.native_threads"):
        native_threads.loaded()  # a model's load
        answers = asyncio.run(predict())
        native_threads.loaded()  # another's
        native_threads.apply(1)  # a call in this thread
    for got in answers:
        np.testing.assert_array_equal(got, [3.0, 3.0])
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith("models' native thread pools cannot be limited (threadpoolctl: OSError: libbroken.so")
