"""Estimators with known misbehaviour, importable by test processes (pickled by reference)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression


class RaisesOnPredict:
    """Fits nothing; predict always raises."""

    n_features_in_ = 4

    def predict(self, X: Any) -> Any:
        raise RuntimeError("this model always fails")


class OnNegative:
    """Predicts zeros (the manifest's example fine); a batch with a negative first value
    first does what ``negative`` does: each subclass's way of misbehaving."""

    n_features_in_ = 4

    def negative(self) -> None:
        raise NotImplementedError

    def predict(self, X: Any) -> Any:
        X = np.asarray(X)
        if (X[:, 0] < 0).any():
            self.negative()
        return np.zeros(len(X), dtype=np.int64)


class RaisesAfterWarmup(OnNegative):
    """Raises on anything with a negative first value."""

    def negative(self) -> None:
        raise RuntimeError("negative input")


class ExitsOnNegative(OnNegative):
    """Calls ``sys.exit()`` on a negative first value (custom code in a pipeline that exits
    instead of raising)."""

    def negative(self) -> None:
        import sys

        sys.exit(3)


class ReportsAssumeFinite(LogisticRegression):
    """A logistic regression (its columns take no nulls) that answers, for each row,
    scikit-learn's ``assume_finite`` setting while it predicts; raises on a negative first
    value. ``fitted()`` gives one fitted on iris."""

    @classmethod
    def fitted(cls) -> ReportsAssumeFinite:
        from sklearn.datasets import load_iris

        data = load_iris()
        return cls(max_iter=1000).fit(data.data, data.target)

    def predict(self, X: Any) -> Any:
        import sklearn

        if (np.asarray(X)[:, 0] < 0).any():
            raise RuntimeError("negative input")
        super().predict(X)  # refuses NaN unless told to assume finite rows: its columns take no nulls
        return np.array([sklearn.get_config()["assume_finite"]] * len(np.asarray(X)))


class InterruptedOnNegative(OnNegative):
    """A Ctrl-C (KeyboardInterrupt) arrives while it predicts a negative first value."""

    def negative(self) -> None:
        raise KeyboardInterrupt


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


def churn_frame(rows: int = 240, seed: int = 0) -> Any:
    """A customer table: a string plan, whole-number tenure, decimal spend; and churn labels."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    plans = rng.choice(["basic", "pro", "enterprise"], size=rows)
    tenure = rng.integers(1, 60, size=rows)
    spend = np.round(rng.gamma(2.0, 20.0, size=rows), 2)
    churned = ((plans == "basic") & (tenure < 20)) | (spend > 80)
    frame = pd.DataFrame({"plan": plans, "tenure": tenure, "spend": spend})
    return frame, np.where(churned, "churned", "stayed")


def churn_pipeline() -> tuple[Any, Any]:
    """The most common production model: a ColumnTransformer that one-hot-encodes a string
    column and scales numeric ones, then a classifier; fitted on a DataFrame."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame, labels = churn_frame()
    columns = ColumnTransformer(
        [("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]), ("num", StandardScaler(), ["tenure", "spend"])]
    )
    return make_pipeline(columns, LogisticRegression(max_iter=1000)).fit(frame, labels), frame


def imputing_pipeline() -> tuple[Any, Any]:
    """Numbers with gaps: a SimpleImputer in front of a classifier, fitted on a DataFrame."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    frame, labels = churn_frame()
    numbers = frame[["tenure", "spend"]].astype(float)
    numbers.iloc[::7, 1] = np.nan
    return make_pipeline(SimpleImputer(), LogisticRegression(max_iter=1000)).fit(numbers, labels), numbers


class BusyOnNegative:
    """Predicts the example fine; a row whose first value is negative keeps the CPU busy
    (a pure-Python loop, holding the GIL between switches) for that many seconds."""

    n_features_in_ = 4

    def predict(self, X: Any) -> Any:
        import time

        X = np.asarray(X)
        seconds = float(-X[:, 0].min()) if (X[:, 0] < 0).any() else 0.0
        deadline = time.perf_counter() + seconds
        spins = 0
        while time.perf_counter() < deadline:
            spins += 1
        return np.zeros(len(X), dtype=np.int64)


class SleepsOnPredict:
    """Loads fine; predict never returns."""

    n_features_in_ = 4

    def predict(self, X: Any) -> Any:
        while True:
            time.sleep(60)


class HogsMemoryOnPredict:
    """Loads fine; predict reserves 64 GiB, 256 MiB at a time (zeroed pages: address
    space, not resident memory, so a missing limit costs no real memory)."""

    n_features_in_ = 4

    def predict(self, X: Any) -> Any:
        hoard = [np.zeros(256 * 2**20, dtype=np.uint8) for _ in range(256)]
        return np.zeros(len(np.asarray(X)) + 0 * len(hoard), dtype=np.int64)


def write_marker(path: str) -> Constant:
    """Record which process ran this (pid, parent pid) in ``path``: code a model file ran."""
    Path(path).write_text(f"{os.getpid()} {os.getppid()}")
    return Constant(1)


class RunsCodeWhenUnpickled:
    """Pickles to a call of :func:`write_marker`: unpickling it runs code (the classic pickle
    exploit). What comes out of the pickle is a working Constant model."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (write_marker, (self.marker,))


class CrashesWhenUnpickled:
    """Pickles to a read of address 0: unpickling it kills the process with SIGSEGV."""

    def __reduce__(self) -> tuple[Any, ...]:
        import ctypes

        return (ctypes.string_at, (0,))


class WritesMarkerOnLoad:
    """A model whose ``__setstate__`` runs :func:`write_marker`: skops calls it when it
    builds the object, which it does only for a trusted type."""

    n_features_in_ = 4

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        write_marker(self.marker)

    def predict(self, X: Any) -> Any:
        return np.zeros(len(np.asarray(X)), dtype=np.int64)


class SleepsOnNegative(OnNegative):
    """A batch with a negative first value sleeps 0.2 s first."""

    def negative(self) -> None:
        time.sleep(0.2)


class NamesItsThread:
    """Answers, for each row, the name of the thread that ran the call; a row whose first
    value is negative keeps the CPU busy for that many seconds first (see BusyOnNegative)."""

    n_features_in_ = 4

    def predict(self, X: Any) -> Any:
        import threading

        BusyOnNegative().predict(X)
        return np.array([threading.current_thread().name] * len(np.asarray(X)))


class ReportsSwitchInterval:
    """Answers, for each row, the serving process's switch interval (sys.getswitchinterval)."""

    n_features_in_ = 4

    def predict(self, X: Any) -> Any:
        import sys

        return np.array([sys.getswitchinterval()] * len(np.asarray(X)))


class NamesItsThreadForText:
    """NamesItsThread for a table of one text column (a DataFrame)."""

    def predict(self, X: Any) -> Any:
        import threading

        return np.array([threading.current_thread().name] * len(X))


class AnswersObjects:
    """Predicts a plain ``object()`` per row: an answer no protocol can encode."""

    n_features_in_ = 4

    def predict(self, X: Any) -> Any:
        return np.array([object() for _ in range(len(np.asarray(X)))], dtype=object)


def customers(rows: int, seed: int = 0) -> tuple[Any, Any]:
    """A customer table as a nightly batch job reads it: an id, a string plan with gaps, a
    whole-number tenure, a decimal spend with gaps, a signup date; and churn labels."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "pro", "enterprise"], size=rows).astype(object)
    plan[rng.random(rows) < 0.05] = None
    tenure = rng.integers(1, 60, size=rows)
    spend = np.round(rng.gamma(2.0, 20.0, size=rows), 2)
    spend[rng.random(rows) < 0.05] = np.nan
    days = rng.integers(0, 1500, size=rows).astype("timedelta64[D]")
    signup = (np.datetime64("2020-01-01") + days).astype("datetime64[ns]")
    frame = pd.DataFrame({"plan": plan, "tenure": tenure, "spend": spend, "signup": signup})
    churned = ((plan == "basic") & (tenure < 20)) | (np.nan_to_num(spend) > 80)
    return frame, np.where(churned, "churned", "stayed")


def customers_pipeline(seed: int = 0, flip: bool = False) -> tuple[Any, Any]:
    """A ColumnTransformer over strings with gaps and numbers with gaps (imputed), then a
    classifier, fitted on :func:`customers`; the signup date is in the signature (checked
    as a date) and dropped by the transformer. ``flip`` learns the opposite labels."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame, labels = customers(2000, seed)
    if flip:
        labels = np.where(labels == "churned", "stayed", "churned")
    plan = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="missing"), OneHotEncoder(handle_unknown="ignore")
    )
    numbers = make_pipeline(SimpleImputer(), StandardScaler())
    columns = ColumnTransformer([("plan", plan, ["plan"]), ("num", numbers, ["tenure", "spend"])])
    return make_pipeline(columns, LogisticRegression(max_iter=1000)).fit(frame, labels), frame
