"""Uploads against a real server: skops in, pickles out by default, and every upload
validated in a limited child process that a hanging or greedy model cannot get past."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import joblib
import pytest
import skops.io

from modelswap.api.client import Client, RemoteError
from modelswap.core.errors import NoReferenceWarning
from modelswap.core.store.store import Store
from tests.conftest import IRIS_ROW, StepClock, publish
from tests.core.store.test_store import tree
from tests.models_for_tests import (
    CrashesWhenUnpickled,
    HogsMemoryOnPredict,
    RunsCodeWhenUnpickled,
    SleepsOnPredict,
    WritesMarkerOnLoad,
    churn_pipeline,
)
from tests.server import TOKEN, Server, serve

TRUSTED = ",".join(
    f"tests.models_for_tests.{cls.__name__}" for cls in (SleepsOnPredict, HogsMemoryOnPredict, WritesMarkerOnLoad)
)


@pytest.fixture
def store(tmp_path: Path, iris_a: Any) -> Store:
    """iris (a joblib version, live) and churn (a joblib pipeline, live)."""
    st = Store(tmp_path / "models", clock=StepClock())
    st.deploy("iris", publish(st, iris_a))
    model, frame = churn_pipeline()
    st.deploy("churn", publish(st, model, "churn", example=frame.head(3)))
    return st


def kept(store: Store) -> dict[str, Any]:
    """Everything an upload could leave behind: each model's versions/ and registry."""
    return {
        model: (tree(store.paths(model).versions_dir), store.paths(model).registry.read_bytes())
        for model in ("iris", "churn")
    }


def refused(call: Callable[[], Any]) -> RemoteError:
    with pytest.raises(RemoteError) as error:
        call()
    return error.value


def children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def test_a_default_server_takes_skops_uploads_and_refuses_pickles_and_untrusted_types(
    store: Store, tmp_path: Path, iris_file: Path
) -> None:
    model, frame = churn_pipeline()
    churn_skops = tmp_path / "churn.skops"
    skops.io.dump(model, churn_skops)
    marker = tmp_path / "marker"
    evil_pickle = tmp_path / "evil.joblib"
    joblib.dump(RunsCodeWhenUnpickled(str(marker)), evil_pickle)
    evil_skops = tmp_path / "evil.skops"
    skops.io.dump(WritesMarkerOnLoad(str(marker)), evil_skops)
    records = frame.head(3).to_dict(orient="records")
    with serve(store.root) as server, server.client() as anon:
        client = Client(server.url, TOKEN)
        version = client.upload("churn", churn_skops, example=records)["id"]
        assert client.deploy("churn", version)["current"] == version
        answer = anon.post("/v1/models/churn/predict", json={"instances": records}).json()
        assert answer["version"] == version and answer["predictions"] == ["stayed"] * 3
        assert store.manifest("churn", version).model_format == "skops"
        before = kept(store)
        # skops names the types before it builds any object: an untrusted one never runs, anywhere
        untrusted = refused(lambda: client.upload("iris", evil_skops, example=[IRIS_ROW]))
        assert (untrusted.status, untrusted.code) == (422, "untrusted_types")
        assert "tests.models_for_tests.WritesMarkerOnLoad" in str(untrusted)
        assert "MODELSWAP_TRUSTED_TYPES" in str(untrusted)
        # a pickle is refused before anything reads it: its code never runs, anywhere
        for pickle in (iris_file, evil_pickle):
            denied = refused(lambda p=pickle: client.upload("iris", p, example=[IRIS_ROW]))  # type: ignore[misc]
            assert (denied.status, denied.code) == (415, "unsupported_format")
            assert "MODELSWAP_ALLOW_PICKLE_UPLOADS=1" in str(denied) and "skops" in str(denied)
        assert not marker.exists()
        assert kept(store) == before


def test_an_upload_with_a_reference_keeps_its_profile(store: Store, tmp_path: Path) -> None:
    model, frame = churn_pipeline()
    churn_skops = tmp_path / "churn.skops"
    skops.io.dump(model, churn_skops)
    records = frame.to_dict(orient="records")
    with serve(store.root) as server:
        client = Client(server.url, TOKEN)
        with warnings.catch_warnings():
            warnings.simplefilter("error", NoReferenceWarning)  # none with a reference
            version = client.upload("churn", churn_skops, example=records[:3], reference=records)["id"]
        with pytest.warns(NoReferenceWarning, match="no reference: drift monitoring is off for this version") as said:
            bare = client.upload("churn", churn_skops, example=records[:3])["id"]
        assert len(said) == 1 and bare in str(said[0].message) and "pass reference=" in str(said[0].message)
        assert "NoReferenceWarning" not in server.output()  # the client says it, not the server's log
        view = client.version("churn", version)
        assert view["reference"] == {"rows": 240, "features": ["plan", "tenure", "spend"]}
        assert "reference.json" in view["manifest"]["files"]
        before = kept(store)
        wrong = refused(
            lambda: client.upload("churn", churn_skops, example=records[:3], reference=[{**records[0], "plan": 3}])
        )
        assert (wrong.status, wrong.code) == (400, "invalid_input")
        assert "the reference does not fit the signature: column 'plan' row 0: expected a string" in str(wrong)
        assert kept(store) == before


def upload_while_watching(server: Server, client: Client, path: Path) -> tuple[RemoteError, float, list[float]]:
    """Upload ``path`` in a thread while /healthz is polled: (error, seconds, health latencies)."""
    outcome: list[Any] = []

    def upload() -> None:
        try:
            outcome.append(client.upload("iris", path, example=[IRIS_ROW]))
        except RemoteError as exc:
            outcome.append(exc)

    start = time.monotonic()
    thread = threading.Thread(target=upload)
    thread.start()
    latencies = []
    with httpx.Client(base_url=server.url, timeout=5) as health:
        while thread.is_alive():
            t = time.monotonic()
            assert health.get("/healthz").status_code == 200
            latencies.append(time.monotonic() - t)
            time.sleep(0.1)
    thread.join()
    assert isinstance(outcome[0], RemoteError), outcome
    return outcome[0], time.monotonic() - start, latencies


def test_validation_bounds_a_hanging_greedy_or_crashing_model_and_keeps_a_files_code_out_of_the_server(
    store: Store, tmp_path: Path
) -> None:
    files = {"sleeps": SleepsOnPredict(), "hogs": HogsMemoryOnPredict()}
    for name, estimator in files.items():
        skops.io.dump(estimator, tmp_path / f"{name}.skops")
    marker_pickle, marker_skops = tmp_path / "by-pickle", tmp_path / "by-skops"
    joblib.dump(RunsCodeWhenUnpickled(str(marker_pickle)), tmp_path / "evil.joblib")
    joblib.dump(CrashesWhenUnpickled(), tmp_path / "crash.joblib")
    skops.io.dump(WritesMarkerOnLoad(str(marker_skops)), tmp_path / "evil.skops")
    env = {
        "MODELSWAP_TRUSTED_TYPES": TRUSTED,
        "MODELSWAP_ALLOW_PICKLE_UPLOADS": "1",
        "MODELSWAP_UPLOAD_VALIDATION_TIMEOUT": "3",
        "MODELSWAP_UPLOAD_VALIDATION_MEMORY": "1G",
    }
    with serve(store.root, env=env) as server:
        client = Client(server.url, TOKEN)
        before = kept(store)
        hung, seconds, latencies = upload_while_watching(server, client, tmp_path / "sleeps.skops")
        assert (hung.status, hung.code) == (422, "validation_failed")
        assert "validation timed out after 3 s" in str(hung)
        assert seconds < 3 + 15 and max(latencies) < 1.0  # the server answered all along
        greedy, seconds, latencies = upload_while_watching(server, client, tmp_path / "hogs.skops")
        assert greedy.status == 422 and "exceeded the memory limit of 1024 MiB" in str(greedy)
        assert seconds < 15 and max(latencies) < 1.0
        crashed = refused(lambda: client.upload("iris", tmp_path / "crash.joblib", example=[IRIS_ROW]))
        assert crashed.status == 422 and "crashed (SIGSEGV)" in str(crashed)
        assert children(server.proc.pid) == []  # the children are gone, their own children too
        assert kept(store) == before  # nothing staged is left
        # accepted: a pickle, since this server allows them, and the skops file whose type it
        # now trusts. The code they run when loaded runs in the validation child (whose parent
        # is the server), never in the server; nothing deploys them here.
        for path, marker in ((tmp_path / "evil.joblib", marker_pickle), (tmp_path / "evil.skops", marker_skops)):
            assert client.upload("iris", path, example=[IRIS_ROW])["id"]
            pid, parent = (int(n) for n in marker.read_text().split())
            assert parent == server.proc.pid and pid != server.proc.pid
        assert server.get_json("/healthz")
