"""Datasets and estimators for ``modelswap train`` and ``scripts/retrain.py``: fit, evaluate, publish."""

from __future__ import annotations

import argparse
import csv
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelswap.core.errors import InvalidInput
from modelswap.core.store.registry import Version, lower_is_better

logger = logging.getLogger(__name__)

DATASETS = ("iris", "wine", "breast_cancer", "digits")
ESTIMATORS = ("logreg", "random_forest", "gradient_boosting", "knn", "decision_tree")


@dataclass(frozen=True)
class Dataset:
    name: str
    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]


@dataclass(frozen=True)
class TrainResult:
    estimator: Any
    metrics: dict[str, float]
    input_example: list[list[float]]
    dataset: str
    estimator_name: str
    reference: np.ndarray | None = None  # the training split: the version's reference profile


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a training run, shared by ``modelswap train`` and the retrain job."""
    parser.add_argument("model", help="model name")
    parser.add_argument("--dataset", default="iris", help="|".join(DATASETS) + ", or csv:PATH with --target")
    parser.add_argument("--target", help="target column of a csv dataset")
    parser.add_argument("--estimator", default="logreg", help="|".join(ESTIMATORS))
    parser.add_argument("--seed", type=int, default=0, help="random seed of the split and the estimator")
    policy = parser.add_mutually_exclusive_group()
    policy.add_argument("--deploy", action="store_true", help="deploy the new version")
    policy.add_argument("--deploy-if-better", metavar="METRIC", help="deploy only if METRIC beats the live version")


def training_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`retrain` from parsed training arguments."""
    return {
        "dataset": args.dataset,
        "target": args.target,
        "estimator": args.estimator,
        "deploy": args.deploy,
        "deploy_if_better": args.deploy_if_better,
        "seed": args.seed,
    }


def load_dataset(spec: str, target: str | None = None) -> Dataset:
    """``iris|wine|breast_cancer|digits`` (bundled with scikit-learn), or ``csv:PATH`` with ``target``."""
    if spec in DATASETS:
        from sklearn import datasets

        loader: Callable[..., Any] = getattr(datasets, f"load_{spec}")
        bunch = loader()
        return Dataset(
            spec,
            np.asarray(bunch.data, dtype=np.float64),
            np.asarray(bunch.target),
            tuple(map(str, bunch.feature_names)),
        )
    if spec.startswith("csv:"):
        return _load_csv(Path(spec[4:]), target)
    raise InvalidInput(f"unknown dataset {spec!r}: use one of {', '.join(DATASETS)} or csv:PATH")


def _load_csv(path: Path, target: str | None) -> Dataset:
    if not target:
        raise InvalidInput("a csv dataset needs --target COLUMN")
    try:
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
    if len(rows) < 3:
        raise InvalidInput(f"{path} needs a header and at least two rows")
    header, body = rows[0], rows[1:]
    if target not in header:
        raise InvalidInput(f"{path} has no column {target!r} (columns: {', '.join(header)})")
    t = header.index(target)
    features = [c for i, c in enumerate(header) if i != t]
    try:
        X = np.array([[float(v) for i, v in enumerate(r) if i != t] for r in body], dtype=np.float64)
    except ValueError as exc:
        raise InvalidInput(f"{path}: every feature column must be numeric ({exc})") from exc
    y = np.array([r[t] for r in body])
    return Dataset(path.stem, X, y, tuple(features))


def make_estimator(name: str, seed: int = 0) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    factories: dict[str, Callable[[], Any]] = {
        "logreg": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "random_forest": lambda: RandomForestClassifier(n_estimators=100, random_state=seed),
        "gradient_boosting": lambda: GradientBoostingClassifier(random_state=seed),
        "knn": lambda: make_pipeline(StandardScaler(), KNeighborsClassifier()),
        "decision_tree": lambda: DecisionTreeClassifier(random_state=seed),
    }
    if name not in factories:
        raise InvalidInput(f"unknown estimator {name!r}: use one of {', '.join(ESTIMATORS)}")
    return factories[name]()


def train(dataset: Dataset, estimator_name: str, *, test_size: float = 0.25, seed: int = 0) -> TrainResult:
    """Fit on a stratified split and evaluate on the held-out part.

    Metrics: accuracy, f1_macro, and roc_auc for binary targets; plus the row counts.
    The training split is the published version's reference (its profile: reference.json).
    """
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    classes = np.unique(dataset.y)
    if len(classes) < 2:
        raise InvalidInput(f"dataset {dataset.name} has a single class; nothing to learn")
    stratify = dataset.y if min(np.unique(dataset.y, return_counts=True)[1]) >= 2 else None
    X_train, X_test, y_train, y_test = train_test_split(
        dataset.X, dataset.y, test_size=test_size, random_state=seed, stratify=stratify
    )
    estimator = make_estimator(estimator_name, seed)
    estimator.fit(X_train, y_train)
    predicted = estimator.predict(X_test)
    metrics: dict[str, float] = {
        "accuracy": round(float(accuracy_score(y_test, predicted)), 6),
        "f1_macro": round(float(f1_score(y_test, predicted, average="macro")), 6),
        "n_train": float(len(y_train)),
        "n_test": float(len(y_test)),
    }
    if len(classes) == 2 and hasattr(estimator, "predict_proba"):
        scores = estimator.predict_proba(X_test)[:, 1]
        metrics["roc_auc"] = round(float(roc_auc_score(y_test, scores)), 6)
    return TrainResult(estimator, metrics, X_test[:3].tolist(), dataset.name, estimator_name, X_train)


def publish_trained(store: Any, model: str, result: TrainResult, *, actor: str, description: str = "") -> Version:
    record: Version = store.publish(
        model,
        result.estimator,
        metrics=result.metrics,
        tags={"dataset": result.dataset, "estimator": result.estimator_name},
        description=description or f"{result.estimator_name} on {result.dataset}",
        example=result.input_example,
        reference=result.reference,
        actor=actor,
    )
    return record


def beats(new: Version, live: Version | None, metric: str) -> bool:
    """True when ``new`` has a strictly better ``metric`` than ``live`` (or nothing is live)."""
    value = new.metrics.get(metric)
    if not isinstance(value, (int, float)):
        raise InvalidInput(f"the new version has no metric {metric!r} (it has: {', '.join(new.metrics)})")
    if live is None:
        return True
    old = live.metrics.get(metric)
    if not isinstance(old, (int, float)):
        return True
    return value < old if lower_is_better(metric) else value > old


@dataclass(frozen=True)
class RetrainOutcome:
    model: str
    version: str
    metrics: dict[str, float]
    deployed: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "metrics": self.metrics,
            "deployed": self.deployed,
            "reason": self.reason,
        }


def retrain(
    store: Any,
    model: str,
    *,
    dataset: str = "iris",
    target: str | None = None,
    estimator: str = "logreg",
    deploy: bool = False,
    deploy_if_better: str | None = None,
    actor: str,
    seed: int = 0,
    progress: Callable[[str], None] = lambda step: None,
) -> RetrainOutcome:
    """Train, evaluate on a held-out split, publish, and deploy as asked.

    ``deploy`` always deploys; ``deploy_if_better=METRIC`` deploys only when the new
    version's METRIC beats the live version's (or nothing is live). A model with a
    delivery policy (``policy.json``, core.delivery.policy) is never deployed here: the
    version is published and the policy's gate, shadow and rollout decide.
    """
    progress("loading data")
    data = load_dataset(dataset, target)
    progress("training and evaluating")
    result = train(data, estimator, seed=seed)
    progress("publishing")
    record = publish_trained(store, model, result, actor=actor)
    if store.paths(model).policy.exists():
        why = "published: the model's delivery policy decides whether it goes live"
        return RetrainOutcome(model, record.id, dict(record.metrics), False, why)
    if deploy_if_better:
        progress(f"comparing {deploy_if_better} with the live version")
        current = store.current(model)
        live = store.registry(model).get(current) if current else None
        if beats(record, live, deploy_if_better):
            progress("deploying")
            why = f"{deploy_if_better} {record.metrics[deploy_if_better]} beats live {_metric(live, deploy_if_better)}"
            store.deploy(model, record.id, actor=actor, reason=why)
            return RetrainOutcome(model, record.id, dict(record.metrics), True, why)
        new_value = record.metrics[deploy_if_better]
        why = f"{deploy_if_better} {new_value} does not beat live {_metric(live, deploy_if_better)}"
        return RetrainOutcome(model, record.id, dict(record.metrics), False, why)
    if deploy:
        progress("deploying")
        store.deploy(model, record.id, actor=actor, reason="retrain --deploy")
        return RetrainOutcome(model, record.id, dict(record.metrics), True, "--deploy")
    return RetrainOutcome(model, record.id, dict(record.metrics), False, "published only")


def _metric(record: Version | None, metric: str) -> str:
    if record is None:
        return "(nothing live)"
    value = record.metrics.get(metric)
    return f"{value} ({record.id})" if value is not None else f"(none, {record.id})"
