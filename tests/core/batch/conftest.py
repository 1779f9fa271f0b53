"""A store whose live version is the customers pipeline, for the batch tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelswap.core.store.store import Store
from tests.models_for_tests import customers_pipeline


@pytest.fixture(scope="module")
def fitted() -> tuple[Any, Any]:
    return customers_pipeline()


@pytest.fixture()
def store(tmp_path: Path, fitted: tuple[Any, Any]) -> Store:
    pipeline, frame = fitted
    store = Store(tmp_path / "models")
    store.deploy("churn", store.publish("churn", pipeline, example=frame.head(20)).id)
    return store
