#!/usr/bin/env python3
"""The models people serve, side by side: modelswap next to the ceiling (a bare Starlette
app around the same file), and MLflow and MLServer serving the same file when named.

    python scripts/bench_realistic.py [--models forest,hgb,pipeline] [--rows 1,64] [--duration 8]
                                      [--rounds 3] [--conc 16] [--mlflow BIN] [--mlserver BIN]

Models: ``forest`` a RandomForestClassifier of 200 trees on 20 features; ``hgb`` a
HistGradientBoostingClassifier on a 50-feature table; ``pipeline`` the ColumnTransformer
pipeline (one-hot + scaler + logistic regression) fitted on a DataFrame, sent as records.
Each at 1-row and 64-row requests. Every target answers once before it is measured; rounds
are interleaved; req/s, server CPU µs per request and p50/p99 are medians, the ratio is
the median of per-round ratios against the ceiling. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from bench import mlserver_server
from benchlib import (
    ROOT,
    ceiling,
    churn_pipeline,
    free_port,
    http,
    interleaved,
    lua_script,
    modelswap,
    process,
    report,
)

sys.path.insert(0, str(ROOT))


def build(name: str) -> tuple[Any, Any]:
    """(fitted model, the training frame: its rows are the requests)."""
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

    if name == "pipeline":
        return churn_pipeline()
    features = 20 if name == "forest" else 50
    X, y = make_classification(n_samples=5000 if name == "forest" else 20000, n_features=features,
                               n_informative=features // 2, random_state=0)  # fmt: skip
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(features)])
    if name == "forest":
        return RandomForestClassifier(n_estimators=200, random_state=0, n_jobs=1).fit(X, y), frame
    return HistGradientBoostingClassifier(random_state=0).fit(X, y), frame


@contextmanager
def mlflow_server(binary: str, model_file: Path, frame: Any, port: int, tmp: Path) -> Iterator[Any]:
    """``mlflow models serve`` on the same file, saved with a signature and as a pickle
    (MLflow's default skops format refuses trees: their node arrays are not a trusted type)."""
    python = str(Path(binary).parent / "python")
    model_dir, example = tmp / "mlflow_model", tmp / "example.json"
    frame.head(5).to_json(example, orient="split", index=False)
    script = (
        "import sys, joblib, pandas as pd, mlflow.sklearn; from mlflow.models import infer_signature; "
        "m = joblib.load(sys.argv[1]); x = pd.read_json(sys.argv[3], orient='split'); "
        "mlflow.sklearn.save_model(m, sys.argv[2], signature=infer_signature(x, m.predict(x)), "
        "serialization_format='cloudpickle')"
    )
    subprocess.run([python, "-c", script, str(model_file), str(model_dir), str(example)], check=True,
                   capture_output=True)  # fmt: skip
    cmd = [binary, "models", "serve", "-m", str(model_dir), "-h", "127.0.0.1", "-p", str(port), "--env-manager",
           "local"]  # fmt: skip
    env = {"PATH": f"{Path(binary).parent}:{os.environ.get('PATH', '')}"}
    with process(cmd, env, f"http://127.0.0.1:{port}/ping", cwd=tmp, timeout=180) as proc:
        yield proc


def bodies(name: str, frame: Any, rows: int) -> dict[str, Any]:
    """The same rows in each server's request format."""
    chunk = frame.head(rows)
    if name == "pipeline":
        records = chunk.to_dict(orient="records")
        v2 = {"parameters": {"content_type": "pd"}, "inputs": [
            {"name": "plan", "datatype": "BYTES", "shape": [rows], "data": chunk["plan"].tolist()},
            {"name": "tenure", "datatype": "INT64", "shape": [rows], "data": chunk["tenure"].tolist()},
            {"name": "spend", "datatype": "FP64", "shape": [rows], "data": chunk["spend"].tolist()},
        ]}  # fmt: skip
        return {"native": {"instances": records}, "mlflow": {"dataframe_records": records}, "v2": v2}
    values = chunk.to_numpy().tolist()
    v2 = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [rows, chunk.shape[1]], "data": values}]}
    return {"native": {"instances": values}, "mlflow": {"dataframe_split": {"columns": list(chunk.columns),
                                                                            "data": values}}, "v2": v2}  # fmt: skip


def measure(name: str, rows: int, args: argparse.Namespace, tmp: Path) -> None:
    import joblib

    from modelswap.core.store.store import Store

    model, frame = build(name)
    model_file = tmp / f"{name}.joblib"
    joblib.dump(model, model_file)
    store = Store(tmp / "models")
    example = frame.head(5) if name == "pipeline" else frame.head(5).to_numpy()
    store.deploy(name, store.publish(name, model_file, example=example).id)
    body = bodies(name, frame, rows)
    lua = lua_script(tmp / f"{name}-{rows}.lua", body["native"])
    ports = {"ceiling": free_port(), "modelswap": free_port()}
    targets = {
        "ceiling": (f"http://127.0.0.1:{ports['ceiling']}/predict", lua),
        "modelswap": (f"http://127.0.0.1:{ports['modelswap']}/v1/models/{name}/predict", lua),
    }
    with ExitStack() as stack:
        pids = {"ceiling": stack.enter_context(ceiling(model_file, ports["ceiling"])).pid,
                "modelswap": stack.enter_context(modelswap(store.root, ports["modelswap"])).pid}  # fmt: skip
        if args.mlflow:
            port, work = free_port(), tmp / f"mlflow-{name}-{rows}"
            work.mkdir()
            pids["mlflow"] = stack.enter_context(mlflow_server(args.mlflow, model_file, frame, port, work)).pid
            targets["mlflow"] = (f"http://127.0.0.1:{port}/invocations", lua_script(work / "b.lua", body["mlflow"]))
        if args.mlserver:
            port, work = free_port(), tmp / f"mlserver-{name}-{rows}"
            work.mkdir()
            pids["mlserver"] = stack.enter_context(mlserver_server(args.mlserver, model_file, port, work)).pid
            url = f"http://127.0.0.1:{port}/v2/models/churn/infer"
            targets["mlserver"] = (url, lua_script(work / "b.lua", body["v2"]))
        payloads = {"ceiling": body["native"], "modelswap": body["native"], "mlflow": body["mlflow"],
                    "mlserver": body["v2"]}  # fmt: skip
        for target, (url, _) in targets.items():
            status, answer = http("POST", url, payloads[target])
            if status != 200:
                raise RuntimeError(f"{target} on {name} answered {status}: {answer}")
        runs = interleaved(targets, args.rounds, args.conc, args.duration, pids)
    report(f"{name}, {rows} row(s) per request, c={args.conc}, {args.rounds} interleaved rounds of "
           f"{args.duration}s, medians; ratio against the ceiling:", runs, "ceiling")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="forest,hgb,pipeline", help="which models, comma-separated")
    parser.add_argument("--rows", default="1,64", help="rows per request, comma-separated")
    parser.add_argument("--duration", type=int, default=8, help="seconds per measured wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--conc", type=int, default=16, help="concurrent connections")
    parser.add_argument("--mlflow", help="an `mlflow` executable to serve the same files")
    parser.add_argument("--mlserver", help="an `mlserver` executable to serve the same files")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed for the load: apt-get install -y wrk")
    for name in args.models.split(","):
        for rows in (int(r) for r in args.rows.split(",")):
            with tempfile.TemporaryDirectory(prefix="modelswap-bench-") as tmp:
                measure(name, rows, args, Path(tmp))


if __name__ == "__main__":
    main()
