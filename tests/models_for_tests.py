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
