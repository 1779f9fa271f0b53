"""The inference plane, without HTTP: routing, checking, batching, and accounting once per batch."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from modelswap.core.delivery.canary import start_canary
from modelswap.core.delivery.shadow_runner import ShadowRunner
from modelswap.core.errors import InvalidInput, ModelNotFound, PredictionFailed
from modelswap.core.metrics import Metrics
from modelswap.core.monitoring.counts import Batch, observations
from modelswap.core.monitoring.monitor import Monitor
from modelswap.core.schema.inputs import Table
from modelswap.core.serving.inference import Inference
from modelswap.core.serving.pool import BatchPool
from modelswap.core.serving.slots import Serving
from modelswap.core.settings import Settings
from modelswap.core.store.aliases import set_alias
from modelswap.core.store.store import Store
from tests.conftest import IRIS_ROW, publish
from tests.models_for_tests import AnswersObjects


class Plane:
    """A real plane on ``store``: real slots, batcher, metrics, monitoring and shadow runner."""

    def __init__(
        self, store: Store, models: tuple[str, ...] = ("iris",), *, inline_s: float = 0.0, **settings: Any
    ) -> None:
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.serving = Serving({m: store.paths(m) for m in models}, metrics=self.metrics)
        self.settings = Settings(root=store.root, prediction_log=None, **settings)
        for model in models:
            self.serving.slot(model).sync()
        self.monitor = Monitor(store, self.settings)
        self.batches: list[int] = []  # requests per batch
        self.batching = BatchPool(
            max_rows=256,
            wait_s=0.0,
            timeout_s=self.settings.predict_timeout,
            inline_s=inline_s,
            observe=lambda requests, _: self.batches.append(requests),
        )
        self.inference = Inference(
            store, self.serving, self.batching, settings=self.settings, metrics=self.metrics,
            monitor=self.monitor, shadows=ShadowRunner(),
        )  # fmt: skip

    def count(self, version: str, variant: str = "stable", outcome: str = "success") -> float:
        labels = {"model": "iris", "version": version, "variant": variant, "outcome": outcome}
        return self.registry.get_sample_value("modelswap_predictions_total", labels) or 0.0

    def close(self) -> None:
        self.batching.close()


@pytest.fixture
def plane(iris_pair: tuple[Store, str, str]) -> Any:
    store, _, _ = iris_pair
    made = Plane(store)
    yield made
    made.close()


def rows(*values: list[float]) -> Table:
    return Table(rows=[list(v) for v in values])


def test_concurrent_requests_share_batches_and_are_each_counted_once(
    plane: Plane, iris_pair: tuple[Store, str, str]
) -> None:
    _, a, _ = iris_pair

    async def go() -> list[Any]:
        target = await plane.inference.target("iris")
        return await asyncio.gather(
            *(plane.inference.predict(target, rows(IRIS_ROW), request_id=f"r{i}") for i in range(40))
        )

    answers = asyncio.run(go())
    assert [a_.snapshot.version for a_ in answers] == [a] * 40
    assert all(len(answer.result) == 1 for answer in answers)
    assert sum(plane.batches) == 40 and len(plane.batches) < 40  # they shared batches
    assert plane.count(a) == 40  # counted once each, in one accounting per batch
    slot = plane.serving.slot("iris")
    assert slot.canary_stats.of("stable") == [40, 0]
    handed = list(plane.monitor.recorder._pending)
    assert len(handed) == len(plane.batches)  # one hand-over per batch, standing for its requests
    observed = [o for item in handed for o in observations(item)]
    assert sorted(o.request_id for o in observed) == sorted(f"r{i}" for i in range(40))  # each with its id
    assert all(o.rows.tolist() == [IRIS_ROW] and len(o.answer) == 1 for o in observed)  # its own row and answer
    assert [o.answer[0] for o in observed] == [a_.result[0] for a_ in answers]  # in the order they queued


def test_a_batch_is_monitored_as_the_requests_it_answered(plane: Plane, iris_pair: tuple[Store, str, str]) -> None:
    """What monitoring gets of a batch equals, request by request, what each request got."""
    _, a, _ = iris_pair
    many = [[5.1, 3.5, 1.4, 0.2], [6.0, 2.9, 4.5, 1.5], [7.7, 3.0, 6.1, 2.3]]

    async def go() -> list[Any]:
        target = await plane.inference.target("iris")
        return await asyncio.gather(*(
            plane.inference.predict(target, rows(*many[: 1 + i % 3]), "predict_proba", request_id=f"r{i}")
            for i in range(12)
        ))  # fmt: skip

    answers = asyncio.run(go())
    handed = list(plane.monitor.recorder._pending)
    assert len(handed) < 12 and all(type(item) is Batch for item in handed)
    observed = {o.request_id: o for item in handed for o in observations(item)}
    assert len(observed) == 12
    for i, answer in enumerate(answers):
        o = observed[f"r{i}"]
        assert (o.model, o.version, o.variant, o.method) == ("iris", a, "stable", "predict_proba")
        assert o.rows.tolist() == many[: 1 + i % 3] and o.answer.tolist() == answer.result.tolist()
        assert o.classes == (0, 1, 2) and 0 < o.latency < 60


def test_a_request_answered_alone_on_the_loop_is_counted_and_monitored_as_a_batch_of_one(
    iris_pair: tuple[Store, str, str],
) -> None:
    """One request at a time to a model proven cheap: each is answered in its own task, on
    the loop, without a queue or a drain, and counted exactly as a batch of one is."""
    import threading

    store, a, _ = iris_pair
    made = Plane(store, inline_s=1.0)  # a 1 ms budget: the iris model is proven cheap after 32 calls
    where: list[bool] = []
    tasks: list[asyncio.Task[Any] | None] = []
    try:

        async def go() -> tuple[asyncio.Task[Any] | None, list[Any]]:
            target = await made.inference.target("iris")
            slot = made.serving.slot("iris")
            predict = slot.snapshot().methods["predict"]

            def watched(X: Any) -> Any:
                on_loop = threading.current_thread() is threading.main_thread()
                where.append(on_loop)
                tasks.append(asyncio.current_task() if on_loop else None)
                return predict(X)

            slot.snapshot().methods["predict"] = watched
            answers = []
            for i in range(40):
                answers.append(await made.inference.predict(target, rows(IRIS_ROW), request_id=f"r{i}"))
                await asyncio.sleep(0)  # the loop's turn between requests, as between a client's
            return asyncio.current_task(), answers

        mine, answers = asyncio.run(go())
        assert where[0] is False and where[-1] is True  # the first on a worker thread, the last on the loop
        assert mine is not None and tasks[-1] is mine  # in the request's own task: no drain task
        assert made.batches == [1] * 40 and made.count(a) == 40
        assert made.serving.slot("iris").canary_stats.of("stable") == [40, 0]
        handed = list(made.monitor.recorder._pending)
        assert len(handed) == 40 and all(type(item) is Batch for item in handed)
        observed = [o for item in handed for o in observations(item)]
        assert [o.request_id for o in observed] == [f"r{i}" for i in range(40)]
        assert [o.answer.tolist() for o in observed] == [answer.result.tolist() for answer in answers]
        assert all(0 < o.latency < 60 and o.rows.tolist() == [IRIS_ROW] for o in observed)
    finally:
        made.close()


def test_rows_the_signature_refuses_are_a_client_error_counted_against_the_version(
    plane: Plane, iris_pair: tuple[Store, str, str]
) -> None:
    _, a, _ = iris_pair

    async def go() -> None:
        target = await plane.inference.target("iris")
        await plane.inference.predict(target, rows([1.0, 2.0]))

    with pytest.raises(InvalidInput, match=a):
        asyncio.run(go())
    assert plane.count(a) == 0
    pending = plane.monitor.recorder._pending
    assert len(pending) == 1 and pending[0].rows is None and pending[0].answer == "client"


def test_a_pinned_request_names_a_version_or_an_alias_and_is_counted_as_pinned(
    plane: Plane, iris_pair: tuple[Store, str, str]
) -> None:
    store, a, b = iris_pair
    set_alias(store, "iris", "champion", b)

    async def go() -> tuple[Any, Any]:
        by_alias = await plane.inference.predict(await plane.inference.target("iris", "champion"), rows(IRIS_ROW))
        by_id = await plane.inference.predict(await plane.inference.target("iris", a), rows(IRIS_ROW))
        return by_alias, by_id

    by_alias, by_id = asyncio.run(go())
    assert (by_alias.snapshot.version, by_alias.snapshot.variant) == (b, "pinned")
    assert (by_id.snapshot.version, by_id.snapshot.variant) == (a, "stable")  # the live one, as it is served
    assert plane.count(b, "pinned") == 1 and plane.count(a) == 1


def test_a_canary_s_share_goes_to_it_sticky_by_routing_key(plane: Plane, iris_pair: tuple[Store, str, str]) -> None:
    store, a, b = iris_pair
    start_canary(store, "iris", b, 0.5)
    plane.serving.slot("iris").sync()

    async def go() -> list[str]:
        target = await plane.inference.target("iris")
        answers = [await plane.inference.predict(target, rows(IRIS_ROW), routing_key=f"k{i}") for i in range(40)]
        again = [await plane.inference.predict(target, rows(IRIS_ROW), routing_key=f"k{i}") for i in range(40)]
        assert [x.snapshot.version for x in answers] == [x.snapshot.version for x in again]
        return [x.snapshot.variant for x in answers]

    variants = asyncio.run(go())
    assert 0 < variants.count("canary") < 40
    assert plane.count(b, "canary") == 2 * variants.count("canary")
    assert plane.count(a) == 2 * variants.count("stable")


def test_a_model_that_fails_is_a_prediction_failure_counted_as_an_error(tmp_path: Path) -> None:
    store = Store(tmp_path / "models")
    store.deploy("iris", publish(store, AnswersObjects()))
    made = Plane(store)
    try:

        async def go() -> None:
            await made.inference.predict(await made.inference.target("iris"), rows(IRIS_ROW))

        with pytest.raises(PredictionFailed, match="failed to predict"):
            asyncio.run(go())
        version = store.current("iris")
        assert version is not None
        assert made.count(version, outcome="error") == 1 and made.count(version) == 0
        assert made.serving.slot("iris").canary_stats.of("stable") == [1, 1]
    finally:
        made.close()


def test_an_unknown_model_and_the_default_model(plane: Plane) -> None:
    with pytest.raises(ModelNotFound):
        asyncio.run(plane.inference.target("nope"))
    assert plane.inference.default_model() == "iris"


def test_a_request_that_times_out_before_its_batch_answers_is_counted_once_as_a_timeout(tmp_path: Path) -> None:
    from modelswap.core.errors import PredictTimeout
    from tests.models_for_tests import SleepsOnNegative

    store = Store(tmp_path / "models")
    store.deploy("iris", publish(store, SleepsOnNegative()))
    made = Plane(store, predict_timeout=0.05)
    try:

        async def go() -> None:
            target = await made.inference.target("iris")
            with pytest.raises(PredictTimeout):
                await made.inference.predict(target, rows([-1.0, 0.0, 0.0, 0.0]), request_id="late")
            await asyncio.sleep(0.4)  # the model answers meanwhile: nobody waits for it any more

        asyncio.run(go())
        version = store.current("iris")
        assert version is not None
        assert made.count(version, outcome="timeout") == 1 and made.count(version) == 0
        assert made.serving.slot("iris").canary_stats.of("stable") == [1, 1]
        pending = made.monitor.recorder._pending
        assert [(o.rows is None, o.answer) for o in pending] == [(True, "timeout")]
    finally:
        made.close()
