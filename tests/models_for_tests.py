"""Estimators with known misbehaviour, importable by test processes (pickled by reference)."""

from __future__ import annotations

from typing import Any

import numpy as np


class RaisesOnPredict:
    """Fits nothing; predict always raises."""

    n_features_in_ = 4

    def predict(self, X: Any) -> Any:
        raise RuntimeError("this model always fails")


class RaisesAfterWarmup:
    """Predicts the manifest's example fine, then raises on anything with a negative first value."""

    n_features_in_ = 4

    def predict(self, X: Any) -> Any:
        X = np.asarray(X)
        if (X[:, 0] < 0).any():
            raise RuntimeError("negative input")
        return np.zeros(len(X), dtype=np.int64)


class Constant:
    """Predicts ``value`` for every row: tells which version answered a batched request."""

    n_features_in_ = 4

    def __init__(self, value: int) -> None:
        self.value = value

    def predict(self, X: Any) -> Any:
        return np.full(len(np.asarray(X)), self.value, dtype=np.int64)


class RowSum:
    """Predicts each row's sum: any mix-up of rows between requests shows."""

    n_features_in_ = 4

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict(self, X: Any) -> Any:
        X = np.asarray(X)
        if (X[:, 0] < 0).any():
            raise RuntimeError("negative input")
        return X.sum(axis=1)
