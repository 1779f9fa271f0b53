"""Online counts, merging, alerts and their first-seen times, thresholds, and the
prediction log, in process on real files."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from modelswap.core.errors import InvalidInput
from modelswap.core.monitoring.counts import Batch, Cell, Observation, Observed, Recorder, requests
from modelswap.core.monitoring.fleet_counts import MonitorConfig, counts_path, read_config, read_counts, write_config
from modelswap.core.monitoring.prediction_log import PredictionLog, find
from modelswap.core.monitoring.profiles import ReferenceProfile, build_profile
from modelswap.core.monitoring.view import Evaluator
from modelswap.core.schema.signature import DOUBLE, Column, Signature
from modelswap.core.store import fsio
from modelswap.core.store.fsio import atomic_write_json
from modelswap.core.store.store import Store

NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray, ReferenceProfile]:
    data = load_iris()
    model = LogisticRegression(max_iter=1000).fit(data.data, data.target)
    signature = Signature(tuple(Column(name, DOUBLE) for name in NAMES))
    return data.data, model.predict(data.data), build_profile(signature, data.data, model.predict(data.data))


def observation(X: np.ndarray, answer: np.ndarray, *, version: str = "v1", latency: float = 0.002) -> Observation:
    return Observation("iris", version, "stable", X, answer, latency, "predict", (0, 1, 2), "rid", time.time())


def test_a_tick_counts_every_row_into_the_reference_bins(iris: tuple[np.ndarray, np.ndarray, ReferenceProfile]) -> None:
    X, y, profile = iris
    clock = Clock()
    recorder = Recorder(lambda model, version: profile, bucket_seconds=60, clock=clock)
    recorder.observe(observation(X[:100], y[:100]))
    recorder.observe(observation(X[100:], y[100:], latency=0.2))
    recorder.failure("iris", "v1", "stable", "client")
    assert recorder.state("iris")["cells"] == []  # nothing is counted on the request path
    drained = recorder.tick()
    assert len(drained) == 3
    [cell] = recorder.state("iris")["cells"]
    assert cell["requests"] == 2 and cell["rows"] == 150 and cell["errors"]["client"] == 1
    assert all(sum(f["counts"]) == 150 and f["nulls"] == 0 for f in cell["features"].values())
    assert sum(cell["prediction"]["counts"]) == 150 and sum(cell["latency"]) == 2
    assert all(len(f["sample"]) == 100 for f in cell["features"].values())  # the reservoir is bounded
    [cumulative] = recorder.state("iris")["cumulative"]
    assert cumulative["rows"] == 150 and cumulative["since"] == clock.now


def test_a_tick_in_slices_counts_what_one_pass_counts(iris: tuple[np.ndarray, np.ndarray, ReferenceProfile]) -> None:
    X, y, profile = iris
    clock = Clock()
    sliced, whole = (Recorder(lambda model, version: profile, bucket_seconds=60, clock=clock) for _ in range(2))
    for i in range(150):  # 1-row requests, as a server sees them
        sliced.observe(observation(X[i : i + 1], y[i : i + 1]))
        whole.observe(observation(X[i : i + 1], y[i : i + 1]))
    assert [len(sliced.count(64)) for _ in range(4)] == [64, 64, 22, 0]  # the oldest first, at most 64
    whole.tick()
    [a], [b] = sliced.state("iris")["cells"], whole.state("iris")["cells"]
    assert a["requests"] == b["requests"] == 150 and a["rows"] == 150
    assert {k: f["counts"] for k, f in a["features"].items()} == {k: f["counts"] for k, f in b["features"].items()}
    assert a["prediction"]["counts"] == b["prediction"]["counts"] and a["latency"] == b["latency"]


def test_counts_of_several_processes_sum_exactly(
    tmp_path: Path, iris: tuple[np.ndarray, np.ndarray, ReferenceProfile]
) -> None:
    X, y, profile = iris
    store = Store(tmp_path / "models")
    paths = store.paths("iris")
    paths.monitor_dir.mkdir(parents=True)
    clock = Clock()
    totals = []
    for ident, rows in (("host-a-1", slice(0, 40)), ("host-b-2", slice(40, 150))):
        recorder = Recorder(lambda model, version: profile, bucket_seconds=60, clock=clock)
        recorder.observe(observation(X[rows], y[rows]))
        recorder.tick()
        atomic_write_json(counts_path(paths, ident), {"time": clock.now, **recorder.state("iris")})
        totals.append(recorder.state("iris")["cells"][0]["features"]["petal_length"]["counts"])
    atomic_write_json(counts_path(paths, "old-3"), {"time": clock.now - 7200, "bucket_seconds": 60, "cells": []})
    merged = read_counts(paths, retention=3600, bucket_seconds=60, now=clock.now)
    assert merged.processes == 2 and not counts_path(paths, "old-3").exists()  # expired files go
    [cell] = merged.cells.values()
    assert cell.rows == 150 and cell.features["petal_length"].counts.tolist() == np.add(*totals).tolist()


def _fleet(profile: ReferenceProfile, clock: Clock, buckets: list[np.ndarray]) -> Evaluator:
    """An evaluator over one bucket per array of rows, the last one ending now."""
    from modelswap.core.monitoring.counts import count
    from modelswap.core.monitoring.fleet_counts import FleetCounts

    step = 60.0
    latest = clock.now // step * step
    cells = {}
    for i, rows in enumerate(buckets):
        start = latest - step * (len(buckets) - 1 - i)
        obs = observation(rows, np.zeros(len(rows), dtype=int))
        cells[("v1", "stable", start)] = count([obs], profile, np.random.default_rng(0))
    counts = FleetCounts(step, cells, {}, 1)
    config = MonitorConfig.from_dict({"min_samples": 100})
    return Evaluator("iris", counts, config, lambda m, v: profile, lambda v: {}, window=step)


def test_an_alert_is_first_seen_where_its_condition_started_to_hold(
    iris: tuple[np.ndarray, np.ndarray, ReferenceProfile],
) -> None:
    X, _, profile = iris
    clock = Clock()
    shifted = X.copy()
    shifted[:, 1] += 3
    evaluator = _fleet(profile, clock, [X, X, shifted, shifted, shifted])
    alerts = [a for a in evaluator.alerts([("v1", "stable")], clock.now) if a["feature"] == "sepal_width"]
    assert [a["severity"] for a in alerts] == ["WARNING"]
    first = alerts[0]["first_seen"]
    expected = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(clock.now // 60 * 60 - 120 + 60))
    assert first.startswith(expected), (first, expected)  # three buckets back: where the shift began


def test_the_view_draws_each_distribution_and_each_bucket_and_parts_client_from_server_errors(
    iris: tuple[np.ndarray, np.ndarray, ReferenceProfile],
) -> None:
    """What the console's charts are drawn from: per feature the reference shares and the
    observed counts bin by bin (nulls last), per bucket of the window the traffic, and the
    errors that are the model's apart from the client's."""
    from modelswap.core.monitoring.counts import count
    from modelswap.core.monitoring.fleet_counts import FleetCounts
    from modelswap.core.monitoring.view import window_cells

    X, y, profile = iris
    clock = Clock()
    step, latest = 60.0, clock.now // 60 * 60
    shifted = X.copy()
    shifted[:, 2] += 10
    rng = np.random.default_rng(0)
    quiet = count([observation(X[:30], y[:30])], profile, rng)
    busy = count([observation(shifted, y), observation(X[:20], y[:20])], profile, rng)
    busy.errors.update(client=2, server=1)
    cells = {("v1", "stable", latest - 3 * step): quiet, ("v1", "stable", latest): busy}
    evaluator = Evaluator(
        "iris", FleetCounts(step, cells, {}, 1), MonitorConfig(), lambda m, v: profile, lambda v: {}, window=5 * step
    )
    series = evaluator.series(("v1", "stable"), latest)
    assert [p["requests"] for p in series] == [0, 1, 0, 0, 5]  # five buckets, oldest first, empty ones too
    assert series[-1]["errors"] == {"client": 2, "server": 1, "timeout": 0}
    assert (series[-1]["server_error_rate"], series[-1]["client_error_rate"]) == (0.2, 0.4)
    assert series[0]["server_error_rate"] is None and series[1]["p99_ms"] is not None
    summary = evaluator.summary("v1", window_cells(evaluator.counts, ("v1", "stable"), latest, 5 * step))
    assert (summary["error_rate"], summary["server_error_rate"], summary["client_error_rate"]) == (0.5, 1 / 6, 2 / 6)
    drawn = {d["feature"]: d["histogram"] for d in summary["drift"]["features"]}
    petal = drawn["petal_length"]
    assert petal["kind"] == "numeric" and len(petal["edges"]) + 2 == len(petal["reference"]) == len(petal["observed"])
    assert sum(petal["reference"]) == pytest.approx(1) and sum(petal["observed"]) == 200 and petal["observed"][-1] == 0
    assert petal["observed"][-2] == 150  # shifted past the reference's top edge: its last bin
    assert petal["reference"][-2] < 0.2
    prediction = summary["drift"]["prediction"]["histogram"]
    assert prediction["kind"] == "numeric" and sum(prediction["observed"]) == 200  # no classes in this signature


def test_thresholds_are_checked_and_kept(tmp_path: Path) -> None:
    store = Store(tmp_path / "models")
    paths = store.paths("iris")
    paths.dir.mkdir(parents=True)
    assert read_config(paths) == MonitorConfig()
    config = MonitorConfig().updated({"psi_warning": 0.3, "min_requests": 10})
    write_config(paths, config)
    again = read_config(paths).updated({"min_samples": 500})
    assert again.drift.psi_warning == 0.3 and again.alerts.min_requests == 10 and again.drift.min_samples == 500
    for bad in ({"psi_warnin": 1}, {"min_requests": "many"}, {"error_rate_warning": -1}, {"min_requests": 1.5}):
        with pytest.raises(InvalidInput):
            MonitorConfig().updated(bad)


def test_the_error_rate_baseline_is_the_predecessors_for_a_new_version(
    iris: tuple[np.ndarray, np.ndarray, ReferenceProfile],
) -> None:
    from modelswap.core.monitoring.fleet_counts import FleetCounts

    X, y, profile = iris
    clock = Clock()
    step = 60.0
    latest = clock.now // step * step
    old, new = Cell(requests=100, rows=100), Cell(requests=20)
    new.errors["client"] = 80
    counts = FleetCounts(step, {("v1", "stable", latest - step): old, ("v2", "stable", latest): new}, {}, 1)
    evaluator = Evaluator("iris", counts, MonitorConfig(), lambda m, v: None, lambda v: {}, window=step)
    [alert] = [a for a in evaluator.alerts([("v2", "stable")], clock.now) if a["kind"] == "error_rate"]
    assert alert["severity"] == "CRITICAL" and alert["value"] == 0.8 and "baseline 0.0%" in alert["message"]
    few = FleetCounts(step, {("v2", "stable", latest): Cell(requests=5, errors={"server": 5})}, {}, 1)
    quiet = Evaluator("iris", few, MonitorConfig(), lambda m, v: None, lambda v: {}, window=step)
    assert quiet.alerts([("v2", "stable")], clock.now) == []  # under min_requests: no verdict


def test_the_prediction_log_rotates_and_finds_requests(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "log", max_bytes=2048, files=3)
    log.start()
    try:
        for i in range(60):
            log.submit([Observation("iris", "v1", "stable", np.array([[1.0, 2.0]]), np.array([i % 3]), 0.001,
                                    request_id=f"r{i}", time=time.time())])  # fmt: skip
        log.flush()
    finally:
        log.close()
    files = sorted((tmp_path / "log").iterdir())
    assert len(files) == 3 and all(p.stat().st_size <= 2048 for p in files)
    lines = [json.loads(line) for p in files for line in p.read_text().splitlines()]
    ids = [line["request_id"] for line in lines]
    assert "r59" in ids and "r0" not in ids  # the oldest went with the oldest file
    found = find(tmp_path / "log", "iris", {"r59", "r0", "r58"})
    assert set(found) == {"r59", "r58"} and found["r59"]["outputs"] == [59 % 3]
    assert find(tmp_path / "log", "other", {"r59"}) == {}
    quiet = PredictionLog(tmp_path / "quiet", inputs=False)
    quiet.start()
    quiet.submit([Observation("iris", "v1", "stable", np.array([[1.0]]), np.array([1]), 0.001, request_id="x")])
    quiet.close()
    [line] = [json.loads(p.read_text()) for p in (tmp_path / "quiet").iterdir()]
    assert "inputs" not in line and line["outputs"] == [1]


class RealOs:
    """The os module, for a test to replace one of its calls where the code under test
    looks it up (``monkeypatch.setattr(fsio, "os", ...)``)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


def logged(i: int) -> Observation:
    """Request ``i``, answered, as the log is handed it."""
    return Observation("iris", "v1", "stable", np.array([[float(i)]]), np.array([i % 3]), 0.001,
                       request_id=f"r{i}", time=time.time())  # fmt: skip


def test_the_prediction_log_writes_many_lines_in_chunks_in_order_and_continues_a_short_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelswap.core.monitoring import prediction_log

    written = []

    class ShortWrites(RealOs):
        """The os module as the store's file helpers see it (only them: the log appends
        through fsio.append_whole), writing 1,000 bytes at most per call: what a signal or
        a full device may do."""

        @staticmethod
        def write(fd: int, data: Any) -> int:
            written.append(len(data))
            return os.write(fd, bytes(data[:1000]))

    monkeypatch.setattr(fsio, "os", ShortWrites())
    log = PredictionLog(tmp_path / "log")
    log.directory.mkdir()
    n = 2 * prediction_log.CHUNK + 100
    log.submit([logged(i) for i in range(n)])
    log.flush()
    [path] = (tmp_path / "log").iterdir()
    assert [json.loads(line)["request_id"] for line in path.read_text().splitlines()] == [f"r{i}" for i in range(n)]
    assert max(written) < path.stat().st_size / 2  # in chunks, not one write of everything


def test_a_full_disk_drops_and_counts_only_the_lines_not_written_and_the_file_keeps_whole_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from modelswap.core.monitoring import prediction_log

    room = [0]

    class FullDisk(RealOs):
        """The os module as the store's file helpers (fsio.append_whole) see it, on a device
        with ``room`` bytes left."""

        @staticmethod
        def write(fd: int, data: Any) -> int:
            if room[0] <= 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            n = os.write(fd, bytes(data[: room[0]]))
            room[0] -= n
            return n

    monkeypatch.setattr(fsio, "os", FullDisk())
    dropped: list[int] = []
    log = PredictionLog(tmp_path / "log", on_drop=dropped.append)
    log.directory.mkdir()

    def hand(ids: range) -> None:
        log.submit([logged(i) for i in ids])

    chunk = prediction_log.CHUNK
    hand(range(3 * chunk))
    [queued] = log._queue
    room[0] = sum(map(len, queued[: chunk + chunk // 2]))  # the first chunk fits, the second is torn
    log.flush()
    [path] = (tmp_path / "log").iterdir()
    lines = [json.loads(line) for line in path.read_text().splitlines()]  # every line whole
    assert [line["request_id"] for line in lines] == [f"r{i}" for i in range(chunk)]
    assert dropped == [2 * chunk]  # only those not written
    room[0] = 10**9  # room again: the next lines follow whole ones
    hand(range(3 * chunk, 3 * chunk + 5))
    log.flush()
    assert len(path.read_text().splitlines()) == chunk + 5
    assert set(find(tmp_path / "log", "iris", {f"r{3 * chunk + 4}"})) == {f"r{3 * chunk + 4}"}


def test_a_failing_close_closes_once_and_the_writer_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from modelswap.core.monitoring import prediction_log

    descriptors: set[int] = set()
    twice: list[int] = []
    failures = [1, 1]  # the first two closes fail: after the first write, and at its first rotation

    class CloseFails(RealOs):
        """The os module as the log sees it, where closing reports an error (as NFS may)."""

        @staticmethod
        def open(*args: Any) -> int:
            fd = os.open(*args)
            descriptors.add(fd)
            return fd

        @staticmethod
        def close(fd: int) -> None:
            if fd not in descriptors:  # closed already: by now, maybe another thread's file
                twice.append(fd)
                return
            descriptors.discard(fd)
            os.close(fd)  # the descriptor is released, the error still reported
            if failures:
                failures.pop()
                raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(prediction_log, "os", CloseFails())
    dropped: list[int] = []
    log = PredictionLog(tmp_path / "log", max_bytes=300, on_drop=dropped.append)  # two lines a file: rotations
    log.start()
    try:
        for i in range(3):
            log.submit([logged(i)])
            log.flush()
        log.submit([logged(3)])
        log.wake()  # the writer's thread flushes this one, and lives on
        deadline = time.monotonic() + 10
        while log._queue and time.monotonic() < deadline:
            time.sleep(0.01)
        assert log._thread is not None and log._thread.is_alive()
    finally:
        log.close()
    assert twice == [] and descriptors == set()
    ids = sorted(
        line["request_id"] for p in (tmp_path / "log").iterdir() for line in map(json.loads, p.read_text().splitlines())
    )
    assert ids == ["r0", "r2", "r3"] and dropped == [1]  # r1's write stopped at the failed rotation: counted


def test_a_request_the_log_cannot_write_as_json_is_dropped_and_counted_alone(tmp_path: Path) -> None:
    dropped: list[int] = []
    log = PredictionLog(tmp_path / "log", on_drop=dropped.append)
    log.directory.mkdir()
    huge = np.array([2**70], dtype=object)  # an integer JSON (orjson) cannot hold
    log.submit([
        Observation("iris", "v1", "stable", np.array([[1.0]]), np.array([1]), 0.001, request_id="fine"),
        Observation("iris", "v1", "stable", np.array([[1.0]]), huge, 0.001, request_id="huge"),
    ])  # fmt: skip
    log.flush()
    [path] = (tmp_path / "log").iterdir()
    assert [json.loads(line)["request_id"] for line in path.read_text().splitlines()] == ["fine"]
    assert dropped == [1]


def test_the_prediction_log_drops_and_counts_what_would_queue_past_its_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelswap.core.monitoring import prediction_log

    monkeypatch.setattr(prediction_log, "MAX_QUEUED_BYTES", 1000)
    dropped: list[int] = []
    log = PredictionLog(tmp_path / "log", on_drop=dropped.append)
    log.directory.mkdir()

    def hand(i: int, rows: int) -> None:
        log.submit([Observation("iris", "v1", "stable", np.ones((rows, 4)), np.zeros(rows), 0.001, request_id=f"r{i}")])

    hand(0, 40)  # over 1000 bytes queued: the next hand-over waits for the writer
    hand(1, 1)
    assert dropped == [1]
    log.flush()
    hand(2, 1)  # written: room again
    log.flush()
    [path] = (tmp_path / "log").iterdir()
    assert [json.loads(line)["request_id"] for line in path.read_text().splitlines()] == ["r0", "r2"]


def test_a_tick_counts_what_was_queued_when_it_began_even_while_requests_keep_coming(
    tmp_path: Path, iris: tuple[np.ndarray, np.ndarray, ReferenceProfile]
) -> None:
    from modelswap.core.monitoring.monitor import Monitor
    from modelswap.core.settings import Settings

    X, y, _ = iris
    monitor = Monitor(Store(tmp_path / "models"), Settings(root=tmp_path / "models", prediction_log=None))
    count = monitor.recorder.count

    def busy(limit: int | None = None, *, most: int | None = None) -> list[Observed]:
        for i in range(2 * min(limit or 1, most or 1)):  # twice as many arrive as each slice counts
            monitor.observe(observation(X[i % 150 : i % 150 + 1], y[i % 150 : i % 150 + 1]))
        return count(limit, most=most)

    for i in range(200):
        monitor.observe(observation(X[i % 150 : i % 150 + 1], y[i % 150 : i % 150 + 1]))
    monitor.recorder.count = busy  # type: ignore[method-assign]
    monitor.tick()  # returns: the heartbeat thread has heartbeats to write next
    assert monitor.recorder.pending == 400  # the 200 queued before were counted; the newcomers wait


def test_feedback_finds_the_newest_answers_once_the_oldest_are_forgotten(
    tmp_path: Path, iris: tuple[np.ndarray, np.ndarray, ReferenceProfile], monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelswap.core.monitoring import monitor as monitoring
    from modelswap.core.settings import Settings

    monkeypatch.setattr(monitoring, "INDEX_SIZE", 8)
    X, y, _ = iris
    monitor = monitoring.Monitor(Store(tmp_path / "models"), Settings(root=tmp_path / "models", prediction_log=None))
    for i in range(40):
        monitor.observe(observation(X[i : i + 1], y[i : i + 1])._replace(request_id=f"r{i}"))
        if i % 7 == 6:
            monitor.tick()
    monitor.tick()
    answer = monitor.feedback("iris", [(f"r{i}", int(y[i])) for i in range(40)])
    matched = [f"r{i}" for i in range(40) if f"r{i}" not in answer["unmatched"]]
    assert 8 <= len(matched) <= 10 and matched == [f"r{i}" for i in range(40 - len(matched), 40)]
    assert answer["matched"] == len(matched)


def _batch(X: np.ndarray, answer: np.ndarray, sizes: list[int], *, method: str = "predict") -> Batch:
    """One batch of len(sizes) requests over the rows of X, as the inference plane hands it over."""
    latencies = [0.0004 * (i + 1) ** 2 for i in range(len(sizes))]  # spread over the histogram's buckets
    ids = [f"b{i}" for i in range(len(sizes))]
    return Batch("iris", "v1", "stable", X, answer, latencies, method, (0, 1, 2), ids, sizes, 1_800_000_000.5)


SIZES = [1, 3, 1, 7, 2, 1, 30, 5, 100]  # 150 rows


@pytest.mark.parametrize("method", ["predict", "predict_proba"])
def test_a_batch_counts_exactly_as_its_requests_one_by_one(
    iris: tuple[np.ndarray, np.ndarray, ReferenceProfile], method: str
) -> None:
    X, y, profile = iris
    answer = y if method == "predict" else np.eye(3)[y] * 0.8 + 0.05
    batch = _batch(X, answer, SIZES, method=method)
    one_by_one = batch.observations()
    assert [len(o.rows) for o in one_by_one] == SIZES and [o.request_id for o in one_by_one] == batch.request_ids
    assert [o.latency for o in one_by_one] == batch.latencies
    assert np.concatenate([o.answer for o in one_by_one]).tolist() == answer.tolist()
    clock = Clock()
    batched, single = (Recorder(lambda model, version: profile, bucket_seconds=60, clock=clock) for _ in range(2))
    batched._rng, single._rng = np.random.default_rng(7), np.random.default_rng(7)  # the same reservoir draws
    batched.observe(batch)
    batched.failure("iris", "v1", "stable", "client")
    for o in one_by_one:
        single.observe(o)
    single.failure("iris", "v1", "stable", "client")
    assert requests(batch) == len(SIZES) and batched.pending == 2
    batched.tick()
    single.tick()
    a, b = batched.state("iris"), single.state("iris")
    assert a["cells"][0]["requests"] == len(SIZES) and a["cells"][0]["rows"] == 150
    assert a["cells"][0]["prediction"] is not None and sum(a["cells"][0]["latency"]) == len(SIZES)
    assert a == b


@pytest.mark.parametrize(
    ("dtype", "inputs", "sizes"),
    [("float64", True, SIZES), ("float32", True, SIZES), ("object", True, SIZES), ("float64", False, SIZES),
     ("float64", True, [150]), ("int64", True, [150])],
)  # fmt: skip
def test_a_batch_is_logged_line_for_line_as_its_requests(
    tmp_path: Path, dtype: str, inputs: bool, sizes: list[int]
) -> None:
    X = (np.arange(150 * 4, dtype=np.float64).reshape(150, 4) / 7).astype(dtype)
    if dtype == "object":
        X[:, 1] = [f"plan-{i % 4}" for i in range(150)]
        X[5, 2] = None
    answer = np.arange(150) % 3 if dtype != "float32" else (np.arange(150) / 3).astype(np.float32)
    batch = _batch(X, answer if dtype != "object" else answer.astype(str).astype(object), sizes)
    batched, single = (PredictionLog(tmp_path / name, inputs=inputs) for name in ("batched", "single"))
    for log in (batched, single):
        log.directory.mkdir()
    batched.submit([batch])
    single.submit(batch.observations())
    batched.flush()
    single.flush()
    [a], [b] = (tmp_path / "batched").iterdir(), (tmp_path / "single").iterdir()
    assert a.read_bytes() == b.read_bytes()
    lines = [json.loads(line) for line in a.read_text().splitlines()]
    assert [line["request_id"] for line in lines] == batch.request_ids
    assert [len(line["outputs"]) for line in lines] == sizes and ("inputs" in lines[0]) == inputs
    if sizes == SIZES and dtype in ("float64", "int64"):
        assert lines[3]["outputs"] == (np.arange(5, 12) % 3).tolist()


def test_feedback_finds_each_request_of_a_batch(
    tmp_path: Path, iris: tuple[np.ndarray, np.ndarray, ReferenceProfile]
) -> None:
    from modelswap.core.monitoring.monitor import Monitor
    from modelswap.core.settings import Settings

    X, y, _ = iris
    wrong = y.copy()
    wrong[:4] = (wrong[:4] + 1) % 3  # the first two requests (1 and 3 rows) answered wrong
    results = []
    for handed in ([_batch(X, wrong, SIZES)], _batch(X, wrong, SIZES).observations()):
        store = Store(tmp_path / f"models{len(results)}")
        store.paths("iris").dir.mkdir(parents=True)  # a model the store has: its counts are kept
        monitor = Monitor(store, Settings(root=store.root, prediction_log=None))
        for item in handed:
            monitor.observe(item)
        monitor.tick()
        labels = np.split(y, np.cumsum(SIZES)[:-1])
        answer = monitor.feedback("iris", [(f"b{i}", labels[i].tolist()) for i in range(len(SIZES))] + [("b99", 1)])
        [cell] = [c for c in monitor.recorder.state("iris")["cells"] if c["feedback"]["n"]]
        results.append((answer, cell["feedback"]))
    assert results[0] == results[1]
    answer, feedback = results[0]
    assert answer["matched"] == len(SIZES) and answer["unmatched"] == ["b99"]
    assert feedback["n"] == 150 and feedback["correct"] == 146


def test_the_answers_kept_for_feedback_leave_the_garbage_collector_nothing_to_walk(
    tmp_path: Path, iris: tuple[np.ndarray, np.ndarray, ReferenceProfile]
) -> None:
    """Thousands of answers are kept; were each a tracked object, every full collection
    would walk them all (a pause on whichever thread allocates: the event loop's)."""
    import gc

    from modelswap.core.monitoring.monitor import Monitor
    from modelswap.core.settings import Settings

    X, y, _ = iris
    monitor = Monitor(Store(tmp_path / "models"), Settings(root=tmp_path / "models", prediction_log=None))

    def tracked_after(requests: range) -> int:
        for b in requests:  # one request per batch, as at concurrency 1
            i = b % 150
            monitor.observe(_batch(X[i : i + 1], y[i : i + 1].copy(), [1])._replace(request_ids=(f"r{b}",)))
        monitor.tick()
        gc.collect()
        return len(gc.get_objects())

    first = tracked_after(range(1000))
    assert tracked_after(range(1000, 3000)) - first < 50  # 2,000 more answers kept
    assert monitor.feedback("iris", [("r2999", int(y[2999 % 150]))])["matched"] == 1


def test_feedback_forgets_the_oldest_batches_with_their_requests(
    tmp_path: Path, iris: tuple[np.ndarray, np.ndarray, ReferenceProfile], monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelswap.core.monitoring import monitor as monitoring
    from modelswap.core.settings import Settings

    monkeypatch.setattr(monitoring, "INDEX_SIZE", 8)
    X, y, _ = iris
    monitor = monitoring.Monitor(Store(tmp_path / "models"), Settings(root=tmp_path / "models", prediction_log=None))
    for b in range(10):  # 3 requests of 2 rows each per batch
        rows = slice(6 * b, 6 * b + 6)
        batch = _batch(X[rows], y[rows], [2, 2, 2])._replace(request_ids=[f"r{b}-{i}" for i in range(3)])
        monitor.observe(batch)
        monitor.tick()
    # generations of 2 ids (INDEX_SIZE / 4), five at most: each batch of 3 fills one, and
    # the oldest goes with its batches' answers
    assert len(monitor._kept) == 5 and sum(len(answers) for _, answers in monitor._kept) == 4
    ids = [f"r{b}-{i}" for b in range(10) for i in range(3)]
    labels = {f"r{b}-{i}": y[6 * b + 2 * i : 6 * b + 2 * i + 2].tolist() for b in range(10) for i in range(3)}
    answer = monitor.feedback("iris", list(labels.items()))
    matched = [rid for rid in ids if rid not in answer["unmatched"]]
    assert len(matched) == 12 and matched == ids[len(ids) - len(matched) :]  # the newest four batches
    assert answer["matched"] == len(matched)


def test_a_tick_slices_batches_by_the_requests_they_hold(iris: tuple[np.ndarray, np.ndarray, ReferenceProfile]) -> None:
    X, y, profile = iris
    recorder = Recorder(lambda model, version: profile, bucket_seconds=60, clock=Clock())
    for start in range(0, 150, 10):  # 15 batches of 10 requests
        recorder.observe(_batch(X[start : start + 10], y[start : start + 10], [1] * 10))
    assert [len(recorder.count(100, most=64)) for _ in range(4)] == [7, 7, 1, 0]  # 70, 70 and 10 requests
    [cell] = recorder.state("iris")["cells"]
    assert cell["requests"] == 150 and cell["rows"] == 150


def test_a_repeated_request_id_is_judged_by_its_newest_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelswap.core.monitoring import monitor as monitoring
    from modelswap.core.settings import Settings

    monkeypatch.setattr(monitoring, "INDEX_SIZE", 8)
    store = Store(tmp_path / "models")
    store.paths("iris").dir.mkdir(parents=True)
    monitor = monitoring.Monitor(store, Settings(root=store.root, prediction_log=None))
    X = np.zeros((3, 4))
    monitor.observe(_batch(X, np.array([0, 0, 0]), [1, 1, 1]))  # b0 b1 b2 answered 0
    monitor.tick()
    monitor.observe(_batch(X, np.array([2, 2, 2]), [1, 1, 1])._replace(request_ids=["x", "b1", "y"]))  # b1 again: 2
    monitor.tick()
    answer = monitor.feedback("iris", [("b1", 2), ("b0", 0)])
    assert answer["matched"] == 2
    cells = monitor.recorder._cumulative["iris"]
    assert sum(cell.feedback["correct"] for _, cell in cells.values()) == 2  # b1 judged by its newest answer


def test_background_slices_are_paced_by_what_they_took(monkeypatch: pytest.MonkeyPatch) -> None:
    """After each slice the pacer sleeps PACE times the slice's length, within its bounds,
    so a second's counting is spread out instead of taking the event loop's turns back to back."""
    from modelswap.core.monitoring import pacing

    now = [100.0]
    slept: list[float] = []
    monkeypatch.setattr(pacing.time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(pacing.time, "sleep", slept.append)
    pause = pacing.Pacer()
    for took in (0.0001, 0.0, 0.01):
        now[0] += took
        pause()
    assert slept == [pytest.approx(pacing.PACE * 0.0001), pacing.PAUSE_S, pacing.MAX_PAUSE_S]
