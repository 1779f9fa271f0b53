"""Serving slots, the watcher and the fleet view, on real stores and real threads."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from modelswap.core.errors import InsufficientMemory, NotReady, PredictionFailed, ValidationFailed
from modelswap.core.metrics import Metrics
from modelswap.core.serving.changes import Watcher
from modelswap.core.serving.fleet import read_fleet, touch_heartbeat, write_heartbeat
from modelswap.core.serving.slots import Serving
from modelswap.core.serving.snapshot import PINNED, STABLE
from modelswap.core.store.layout import MODEL_FILE
from modelswap.core.store.store import Store
from tests.conftest import publish


def make_serving(store: Store, **kwargs: Any) -> Serving:
    return Serving({"iris": store.paths("iris")}, metrics=Metrics(CollectorRegistry()), **kwargs)


def test_a_slot_serves_nothing_until_synced_then_the_current_version(store: Store, iris_a: Any) -> None:
    a = publish(store, iris_a)
    slot = make_serving(store).slot("iris")
    with pytest.raises(NotReady):
        slot.snapshot()
    store.deploy("iris", a)
    assert slot.sync() is True and slot.sync() is False
    snap = slot.snapshot()
    assert (snap.version, snap.variant) == (a, STABLE)
    assert snap.methods["predict"]([[6.0, 2.9, 4.5, 1.5]]).tolist() == [1]


def test_a_request_keeps_its_snapshot_across_a_swap(store: Store, iris_a: Any, iris_b: Any) -> None:
    a, b = publish(store, iris_a), publish(store, iris_b)
    store.deploy("iris", a)
    slot = make_serving(store).slot("iris")
    slot.sync()
    held = slot.snapshot()
    store.deploy("iris", b)
    slot.sync()
    assert held.version == a and held.loaded.estimator is not slot.snapshot().loaded.estimator
    assert slot.snapshot().version == b


def test_a_version_that_fails_to_load_leaves_the_old_one_serving_and_is_retried_on_change(
    store: Store, iris_a: Any
) -> None:
    a, bad = publish(store, iris_a), publish(store, iris_a)
    store.deploy("iris", a)
    serving = make_serving(store)
    slot = serving.slot("iris")
    slot.sync()
    (store.paths("iris").version_dir(bad) / MODEL_FILE).write_bytes(b"rot")
    link = store.paths("iris").current
    os.unlink(link)
    os.symlink(f"versions/{bad}", link)
    assert slot.sync() is False
    assert slot.snapshot().version == a
    assert slot.last_error is not None and slot.last_error.version == bad and "corrupt" in slot.last_error.message
    loads = serving.metrics.registry.get_sample_value(
        "modelswap_model_loads_total", {"model": "iris", "outcome": "failure"}
    )
    assert loads == 1.0
    slot.sync()  # the same broken target is not reloaded on every poll
    assert (
        serving.metrics.registry.get_sample_value(
            "modelswap_model_loads_total", {"model": "iris", "outcome": "failure"}
        )
        == 1.0
    )
    slot.sync(force=True)  # an explicit reload retries
    assert (
        serving.metrics.registry.get_sample_value(
            "modelswap_model_loads_total", {"model": "iris", "outcome": "failure"}
        )
        == 2.0
    )


def test_warm_standby_makes_rollback_an_in_memory_swap(store: Store, iris_a: Any, iris_b: Any) -> None:
    a, b = publish(store, iris_a), publish(store, iris_b)
    serving = make_serving(store, keep_loaded=2)
    store.validator = serving.validator
    slot = serving.slot("iris")
    store.deploy("iris", a)
    slot.sync()
    store.deploy("iris", b)
    slot.sync()
    first_a = slot._cache[a][0]
    store.rollback("iris")
    slot.sync()
    assert slot.snapshot().loaded is first_a  # same object: nothing was reloaded
    loads = serving.metrics.registry.get_sample_value(
        "modelswap_model_loads_total", {"model": "iris", "outcome": "success"}
    )
    assert loads == 2.0


def test_keep_loaded_bounds_the_versions_in_memory(store: Store, iris_a: Any) -> None:
    ids = [publish(store, iris_a) for _ in range(4)]
    slot = make_serving(store, keep_loaded=2).slot("iris")
    for v in ids:
        store.deploy("iris", v)
        slot.sync()
    assert slot.loaded_versions() == ids[-2:]


def test_pinned_requests_do_not_displace_the_warm_standby(store: Store, iris_a: Any) -> None:
    ids = [publish(store, iris_a) for _ in range(4)]
    slot = make_serving(store, keep_loaded=2).slot("iris")
    store.deploy("iris", ids[0])
    slot.sync()
    store.deploy("iris", ids[1])
    slot.sync()
    assert slot.pinned(ids[2]).variant == PINNED and slot.pinned(ids[3]).version == ids[3]
    assert slot.loaded_versions() == ids[:2]
    assert slot.pinned(ids[1]).variant == STABLE


def test_shared_memory_maps_a_joblib_models_arrays_from_its_version_file_copy_on_write(
    store: Store, iris_a: Any
) -> None:
    import numpy as np

    a = publish(store, iris_a)
    store.deploy("iris", a)
    model_file = store.paths("iris").version_dir(a) / MODEL_FILE
    on_disk = model_file.read_bytes()
    shared = make_serving(store, share_memory=True).slot("iris")
    private = make_serving(store).slot("iris")
    assert shared.sync() and private.sync()
    coef = shared.snapshot().loaded.estimator.coef_
    # a plain ndarray (no numpy Python code per operation) over the mapping of the file
    assert type(coef) is np.ndarray and isinstance(coef.base, np.memmap)
    assert Path(coef.base.filename) == model_file.resolve()
    assert not isinstance(private.snapshot().loaded.estimator.coef_.base, np.memmap)
    row = [[6.0, 2.9, 4.5, 1.5]]
    assert (
        shared.snapshot().methods["predict_proba"](row).tolist()
        == private.snapshot().methods["predict_proba"](row).tolist()
    )
    coef[:] = 0.0  # copy-on-write: the process's own pages change, never the immutable file
    assert model_file.read_bytes() == on_disk


def test_a_memory_mapped_answer_reaches_each_request_as_plain_rows_the_collector_need_not_track(
    store: Store, iris_a: Any
) -> None:
    """An estimator holding a memmap (one the load could not make a plain view: e.g. held in
    a tuple) answers with it indexed (classes_.take(i)); the requests, alone or batched,
    get plain ndarray rows (no numpy memmap machinery per slice), the right ones, and
    nothing of the memmap is kept (monitoring keeps answers: each memmap is an object the
    garbage collector walks)."""
    import asyncio

    import numpy as np
    from sklearn.datasets import load_iris

    from modelswap.core.serving.batching import Batcher
    from modelswap.core.serving.threads import ModelThreads

    store.deploy("iris", publish(store, iris_a))
    shared = make_serving(store, share_memory=True).slot("iris")
    assert shared.sync()
    snapshot = shared.snapshot()
    estimator = snapshot.loaded.estimator
    estimator.classes_ = estimator.classes_.base  # the mapping itself, a numpy.memmap
    rows = load_iris().data[::10]
    assert isinstance(estimator.predict(rows), np.memmap)  # what the estimator gives back
    answer = snapshot.methods["predict"](rows)
    assert type(answer) is np.ndarray and answer.base is None  # a copy: nothing of the memmap kept

    async def requests(batcher: Batcher) -> list[Any]:
        lone = await batcher.submit(rows[:1])
        return [lone, *await asyncio.gather(*(batcher.submit(rows[i : i + 1]) for i in range(1, len(rows))))]

    executor = ModelThreads(2, "predict-test")
    try:
        results = asyncio.run(requests(Batcher(snapshot.methods["predict"], executor)))
    finally:
        executor.close()
    expected = iris_a.predict(rows).tolist()
    assert [type(r) for r in results] == [np.ndarray] * len(rows)
    assert [r.tolist() for r in results] == [[e] for e in expected]


def test_a_model_that_exits_fails_its_call_and_a_ctrl_c_goes_up_as_it_is(store: Store) -> None:
    from tests.models_for_tests import ExitsOnNegative, InterruptedOnNegative

    def predict_of(model: Any) -> Any:
        store.deploy("iris", publish(store, model))
        slot = make_serving(store).slot("iris")
        assert slot.sync()
        return slot.snapshot().methods["predict"]

    exits, interrupted = predict_of(ExitsOnNegative()), predict_of(InterruptedOnNegative())
    assert exits([[1.0, 0.0, 0.0, 0.0]]).tolist() == interrupted([[1.0, 0.0, 0.0, 0.0]]).tolist() == [0]
    with pytest.raises(PredictionFailed, match="it raised SystemExit"):
        exits([[-1.0, 0.0, 0.0, 0.0]])
    with pytest.raises(KeyboardInterrupt):  # the user's, not the model's failure: nothing makes it an answer
        interrupted([[-1.0, 0.0, 0.0, 0.0]])


def test_a_served_call_skips_scikit_learns_finite_check_for_itself_only(store: Store) -> None:
    """Rows were checked finite before the call: scikit-learn assumes it during the call
    and only then, whether the call answers or raises."""
    import sklearn

    from tests.models_for_tests import ReportsAssumeFinite

    store.deploy("iris", publish(store, ReportsAssumeFinite.fitted()))
    slot = make_serving(store).slot("iris")
    assert slot.sync()
    predict = slot.snapshot().methods["predict"]
    assert sklearn.get_config()["assume_finite"] is False
    assert predict([[1.0, 0.0, 0.0, 0.0]]).tolist() == [True]
    assert sklearn.get_config()["assume_finite"] is False
    with pytest.raises(RuntimeError, match="negative input"):
        predict([[-1.0, 0.0, 0.0, 0.0]])
    assert sklearn.get_config()["assume_finite"] is False


def test_memory_guard_refuses_a_load_that_would_not_fit(store: Store, iris_a: Any) -> None:
    a = publish(store, iris_a)
    store.deploy("iris", a)
    slot = make_serving(store, headroom=lambda: 100).slot("iris")
    assert slot.sync() is False
    assert slot.last_error is not None and slot.last_error.code == InsufficientMemory.code


def test_strict_versions_refuses_a_model_from_another_sklearn(store: Store, iris_a: Any) -> None:
    a = publish(store, iris_a)
    manifest_path = store.paths("iris").version_dir(a) / "manifest.json"
    manifest_path.write_text(manifest_path.read_text().replace('"sklearn_version": "', '"sklearn_version": "0.0.1-'))
    # the manifest is not in its own digest list: editing it leaves the files intact
    lenient = make_serving(store).slot("iris").prepare(a)
    assert any("trained with scikit-learn 0.0.1-" in w for w in lenient.warnings)
    with pytest.raises(ValidationFailed, match="MODELSWAP_STRICT_VERSIONS"):
        make_serving(store, strict_versions=True).slot("iris").prepare(a)


@pytest.mark.parametrize("mode", ["auto", "poll"])
def test_the_watcher_swaps_after_a_deploy_from_elsewhere(store: Store, iris_a: Any, mode: str) -> None:
    a, b = publish(store, iris_a), publish(store, iris_a)
    store.deploy("iris", a)
    serving = make_serving(store)
    slot = serving.slot("iris")
    watcher = Watcher(store.root, mode=mode, interval=0.2)
    watcher.start()
    watcher.add(slot, store.paths("iris").dir)
    try:
        deadline = time.monotonic() + 5
        while slot.version != a and time.monotonic() < deadline:
            time.sleep(0.01)
        Store(store.root).deploy("iris", b)
        while slot.version != b and time.monotonic() < deadline:
            time.sleep(0.01)
        assert slot.version == b
    finally:
        watcher.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith("sync-")]


def test_the_watcher_follows_models_added_and_removed_and_wakes_on_a_new_model_directory(
    store: Store, iris_a: Any
) -> None:
    a = publish(store, iris_a)
    store.deploy("iris", a)
    serving = make_serving(store)
    woken = threading.Event()
    watcher = Watcher(store.root, mode="auto", interval=5.0, on_root=woken.set)
    watcher.start()
    try:
        slot = serving.add(store.paths("iris"))
        watcher.add(slot, store.paths("iris").dir)
        deadline = time.monotonic() + 5
        while slot.version != a and time.monotonic() < deadline:
            time.sleep(0.01)
        assert slot.version == a
        (store.root / "newmodel").mkdir()
        assert woken.wait(5), "inotify on the root reports a new model directory"
        watcher.remove("iris")
        serving.remove("iris")
        assert "iris" not in serving.slots
        assert not [t for t in threading.enumerate() if t.name == "sync-iris"]
    finally:
        watcher.stop()


def test_fleet_counts_fresh_heartbeats_and_ignores_stale_ones(store: Store, iris_a: Any) -> None:
    a = publish(store, iris_a)
    paths = store.paths("iris")
    write_heartbeat(paths, {"version": a})
    dead = paths.fleet_dir / "other-1.json"  # a process that stopped beating long ago
    dead.write_text(f'{{"host": "other", "pid": 1, "version": "{a}", "time": 0}}')
    os.utime(dead, (0, 0))
    (paths.fleet_dir / "junk.json").write_text("{")
    view = read_fleet(paths, 1.0, a)
    assert len(view.processes) == 1 and view.summary == f"1/1 processes on {a}" and view.converged
    later = read_fleet(paths, 1.0, a, now=lambda: time.time() + 10)
    assert later.processes == () and not later.converged
    assert touch_heartbeat(paths)  # an unchanged beat is only touched: fresh again
    assert len(read_fleet(paths, 1.0, a).processes) == 1


def test_a_pinned_version_is_ready_without_a_load_only_when_live_or_pinned_before(
    store: Store, iris_a: Any, iris_b: Any
) -> None:
    a, b = publish(store, iris_a), publish(store, iris_b)
    store.deploy("iris", a)
    slot = make_serving(store).slot("iris")
    slot.sync()
    assert slot.pinned_ready(a) is slot.snapshot()
    assert slot.pinned_ready(b) is None  # it must be loaded first (on a thread)
    loaded = slot.pinned(b)
    assert loaded.variant == PINNED and slot.pinned_ready(b) is loaded
