"""core/metrics.py: a batch's latencies land in the histogram exactly as one observe each would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from modelswap.core.metrics import Metrics


def samples(registry: CollectorRegistry, name: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        if family.name == name
        for s in family.samples
        if not s.name.endswith("_created")  # when the series was made: the two registries differ by design
    }


def test_a_batch_of_latencies_counts_as_one_observe_each() -> None:
    latencies = [0.0001, 0.0004, 0.003, 0.003, 0.02, 0.7, 4.0, 1e6, 0.0]
    batched, one_by_one = CollectorRegistry(), CollectorRegistry()
    Metrics(batched).answered("iris", "v1", "stable", latencies)
    reference = Metrics(one_by_one)
    for seconds in latencies:
        reference.prediction("iris", "v1", "stable", "success", seconds)
    for name in ("modelswap_prediction_latency_seconds", "modelswap_predictions"):
        got, want = samples(batched, name), samples(one_by_one, name)
        assert got and got == want, name


def test_a_batch_of_one_is_one_observe() -> None:
    registry = CollectorRegistry()
    Metrics(registry).answered("iris", "v1", "canary", [0.002])
    assert registry.get_sample_value("modelswap_predictions_total", {"model": "iris", "version": "v1",
                                     "variant": "canary", "outcome": "success"}) == 1  # fmt: skip
    assert registry.get_sample_value("modelswap_prediction_latency_seconds_count",
                                     {"model": "iris", "variant": "canary"}) == 1  # fmt: skip
