"""What an adversarial campaign found at the HTTP edge: clear codes for storage failures,
no paths or tracebacks to anonymous callers, strict types, links never followed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from modelswap.core.store.store import Store
from tests.api.cli.test_commands import run
from tests.confine import FILE_PERMISSIONS_APPLY, READ_ONLY_STORE
from tests.conftest import IRIS_ROW
from tests.server import serve


def test_a_file_linked_outside_the_store_is_refused_not_served(
    iris_pair: tuple[Store, str, str], tmp_path: Path
) -> None:
    store, a, b = iris_pair
    secret = tmp_path / "secret.json"
    secret.write_text('{"password": "hunter2"}')
    metrics = store.paths("iris").version_dir(b) / "metrics.json"
    metrics.unlink()
    metrics.symlink_to(secret)
    outside = tmp_path / "outside-version"
    outside.mkdir()
    (store.paths("iris").versions_dir / "20261123-040000-0000aa").symlink_to(outside)
    with serve(store.root) as server, server.admin() as admin:
        r = admin.get(f"/v1/models/iris/versions/{b}")
        assert r.status_code == 422 and r.json()["error"]["code"] == "symlink_refused"
        assert "hunter2" not in r.text
        gone = admin.delete("/v1/models/iris/versions/20261123-040000-0000aa")
        assert gone.status_code == 422 and gone.json()["error"]["code"] == "symlink_refused"
    assert outside.is_dir() and (store.paths("iris").versions_dir / "20261123-040000-0000aa").is_symlink()


def test_anonymous_callers_get_no_store_path_and_jobs_need_the_token(iris_pair: tuple[Store, str, str]) -> None:
    store, _, _ = iris_pair
    with serve(store.root) as server, server.client() as anon, server.admin() as admin:
        ghost = anon.get("/v1/models/ghost")
        assert ghost.status_code == 404 and str(store.root) not in ghost.text
        assert anon.get("/v1/jobs/20261123-000000-abcdef").status_code == 401
        assert admin.get("/v1/jobs/20261123-000000-abcdef").status_code == 404


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/models/iris/retrain", {"seed": -354}, "seed"),
        ("/v1/models/iris/retrain", {"seed": 2**48}, "seed"),
        ("/v1/models/iris/retrain", {"target": "label"}, "target"),
        ("/v1/models/iris/gc", {"keep": 1, "dry_run": {}}, "dry_run"),
        ("/v1/models/iris/deploy", {"version": "20261123-000000-abcdef", "force": 1}, "force"),
    ],
)
def test_fields_of_the_wrong_type_are_refused_before_anything_runs(
    iris_pair: tuple[Store, str, str], path: str, body: dict[str, Any], field: str
) -> None:
    store, _, _ = iris_pair
    versions = sorted(p.name for p in store.paths("iris").versions_dir.iterdir())
    with serve(store.root) as server, server.admin() as admin:
        r = admin.post(path, json=body)
    assert r.status_code == 400 and field in r.json()["error"]["message"], r.text
    assert sorted(p.name for p in store.paths("iris").versions_dir.iterdir()) == versions


def test_publish_deploy_that_publishes_but_cannot_deploy_says_both(iris_pair: tuple[Store, str, str]) -> None:
    import joblib
    from sklearn.datasets import load_wine
    from sklearn.tree import DecisionTreeClassifier

    store, _, _ = iris_pair
    wine = load_wine()  # 13 features where iris's live version takes 4: the deploy is refused
    path = store.root.parent / "wine.joblib"
    joblib.dump(DecisionTreeClassifier(random_state=0).fit(wine.data, wine.target), path)
    example = store.root.parent / "wine.json"
    example.write_text(str(wine.data[:1].tolist()))
    result = run(store.root, "publish", "iris", str(path), "--example", str(example), "--deploy")
    assert result.returncode == 1
    published = [v for v in store.registry("iris").ids() if v not in (store.current("iris"),)]
    newest = max(published, key=lambda v: store.version("iris", v).created_at)
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and f"published iris {newest}, but deploying it failed" in line


def test_a_full_disk_is_507_storage_full_and_a_read_only_store_503(iris_pair: tuple[Store, str, str]) -> None:
    store, _, b = iris_pair
    # The server's own writes hit the limit: RLIMIT_FSIZE makes every write past it fail
    # with EFBIG, the kernel's "no more room" for this process (no privileges needed).
    limit = store.paths("iris").history.stat().st_size
    prelude = (
        "import resource, signal\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))"
    )
    with serve(store.root, prelude=prelude) as server, server.admin() as admin:
        r = admin.post("/v1/models/iris/deploy", json={"version": b})
        assert r.status_code == 507 and r.json()["error"]["code"] == "storage_full", r.text
        assert str(store.root) not in r.text
    assert store.current("iris") != b
    assert os.path.getsize(store.paths("iris").history) == limit


def test_a_heartbeat_that_keeps_failing_is_one_log_line_not_one_per_tick(iris_pair: tuple[Store, str, str]) -> None:
    import time

    store, _, _ = iris_pair
    (store.paths("iris").dir / ".fleet").write_text("not a directory")  # every heartbeat write fails
    with serve(store.root, env={"MODELSWAP_POLL_INTERVAL": "0.1"}) as server:
        time.sleep(1.5)  # some fifteen ticks
        lines = [ln for ln in server.output().splitlines() if "heartbeat failed" in ln]
    assert len(lines) == 1, lines


def test_a_writer_with_other_soft_lock_settings_gets_one_line_not_a_traceback(
    iris_pair: tuple[Store, str, str],
) -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    store, a, b = iris_pair
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time\nfrom pathlib import Path\nfrom modelswap.core.store.locking import LockPolicy, hold\n"
            f"with hold(Path({str(store.paths('iris').lock)!r}), LockPolicy('soft', 5, 5)):\n"
            "    print('held', flush=True)\n    time.sleep(30)\n"
        )],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        env = {"MODELSWAP_LOCK": "soft", "MODELSWAP_LOCK_STALE_SECONDS": "60", "MODELSWAP_LOCK_TIMEOUT": "1"}
        result = run(store.root, "deploy", "iris", b, env=env)
    finally:
        holder.kill()
        holder.communicate()
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "MODELSWAP_LOCK_STALE_SECONDS" in result.stderr


def test_an_unreadable_index_or_journal_answers_reads_503_store_not_readable(
    iris_pair: tuple[Store, str, str],
) -> None:
    store, a, b = iris_pair
    paths = store.paths("iris")
    reads = ["/v1/models", "/v1/models/iris", "/v1/models/iris/versions", f"/v1/models/iris/versions/{b}",
             "/v1/models/iris/history", f"/v1/models/iris/versions/{b}/lineage"]  # fmt: skip
    # The server is held to the permission bits (tests run as root, which is not): a file
    # chmod 000 answers its reads with EACCES, a directory 0555 its writes.
    with serve(store.root, prelude=FILE_PERMISSIONS_APPLY) as server, server.admin() as admin:
        for unreadable in (paths.registry, paths.history):
            unreadable.chmod(0)
            try:
                for path in reads:
                    r = admin.get(path)
                    assert r.status_code == 503, (unreadable.name, path, r.text)
                    assert r.json()["error"]["code"] == "store_not_readable", (unreadable.name, path, r.text)
                    assert str(store.root) not in r.text
                predicted = admin.post("/v1/models/iris/predict", json={"instances": [IRIS_ROW]})
                assert predicted.status_code == 200 and predicted.headers["x-model-version"] == a
            finally:
                unreadable.chmod(0o644)
        paths.dir.chmod(0o555)
        try:
            refused = admin.post("/v1/models/iris/deploy", json={"version": b})
        finally:
            paths.dir.chmod(0o755)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "store_not_writable", refused.text
        assert admin.get("/v1/models/iris/versions").status_code == 200
    assert store.current("iris") == a


@pytest.mark.parametrize("workers", [1, 2])
def test_a_read_only_store_without_a_token_serves_with_the_admin_api_off(
    iris_pair: tuple[Store, str, str], workers: int
) -> None:
    store, a, b = iris_pair
    no_token = {"MODELSWAP_ADMIN_TOKEN": "", "MODELSWAP_ADMIN_TOKEN_FILE": ""}
    with (
        serve(store.root, workers=workers, prelude=READ_ONLY_STORE, env=no_token) as server,
        server.client() as anon,
        server.admin() as admin,
    ):
        for _ in range(4):  # on every worker
            predicted = anon.post("/v1/models/iris/predict", json={"instances": [IRIS_ROW]})
            assert predicted.status_code == 200 and predicted.headers["x-model-version"] == a
            assert anon.get("/v1/models/iris/versions").status_code == 200
            for client in (anon, admin):  # no token can help
                r = client.post("/v1/models/iris/deploy", json={"version": b})
                assert r.status_code == 503 and r.json()["error"]["code"] == "admin_disabled", r.text
                assert "read-only" in r.json()["error"]["message"] and "www-authenticate" not in r.headers
        said = [line for line in server.output().splitlines() if "admin API off" in line]
    assert len(said) == 1 and "read-only" in said[0] and "Read-only file system" in said[0], said
    assert not (store.root / ".admin-token").exists()
    assert store.current("iris") == a
