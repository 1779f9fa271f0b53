"""The on-call console in a real headless Chromium (Debian's ``chromium``, installed by
scripts/test) against a real server: overview, read-only mode, a one-click rollback with
a reason, a refused deploy's message, protected reads, and the charts: a drifted
feature's distributions beside the reference's, traffic over the window, a rollout's
steps and a shadow's agreement, and the delivery policy with where its candidate stands.
Screenshots of the overview, the model page, its drift charts and its policy section are
saved under the test's artifacts directory."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from modelswap.core.store.store import Store
from tests.conftest import ROOT
from tests.server import TOKEN, Server, serve, wait_for


def iris_model(seed: int) -> Any:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=1000, C=0.5 * seed).fit(X, y)


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("MODELSWAP_TEST_ARTIFACTS", ROOT / "test-artifacts"))
# As the machine allows: no sandbox as root, no background traffic to hosts we cannot reach.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip
FAST = {"MODELSWAP_POLL_INTERVAL": "0.1", "MODELSWAP_MONITOR_FLUSH": "0.2"}


@pytest.fixture()
def page() -> Iterator[Page]:
    """A new headless Chromium per test (Playwright's loop thread must not outlive it)."""
    assert Path(CHROMIUM).exists(), "Chromium is missing: scripts/test installs it (apt-get install -y chromium)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        yield context.new_page()
        context.close()
        browser.close()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Store, list[str]]]:
    store = Store(tmp_path_factory.mktemp("console") / "models")
    first = store.publish("iris", iris_model(seed=1), metrics={"accuracy": 0.93}).id
    store.deploy("iris", first)
    second = store.publish("iris", iris_model(seed=2), metrics={"accuracy": 0.95}).id
    store.deploy("iris", second, reason="nightly retrain")
    broken = store.publish("iris", iris_model(seed=3), metrics={"accuracy": 0.99}).id
    model_file = next(store.paths("iris").version_dir(broken).glob("model.*"))
    model_file.write_bytes(model_file.read_bytes()[:-8] + b"tampered")  # fails its digest check
    with serve(store.root, env=FAST) as server:
        yield server, store, [first, second, broken]


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def test_a_drifted_feature_shows_its_distribution_beside_the_references_with_its_psi_first(
    tmp_path: Path, page: Page
) -> None:
    """After shifted traffic the model page draws petal_length's reference and live
    distributions with its PSI in the title, before the calm features; traffic is drawn
    over the window; two malformed requests are the clients' errors, not the model's."""
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    data = load_iris()
    frame = pd.DataFrame(data.data, columns=NAMES)
    store = Store(tmp_path / "models")
    model = LogisticRegression(max_iter=1000).fit(frame, data.target)
    store.deploy("iris", store.publish("iris", model, example=frame.head(3), reference=frame).id)
    rows = frame.to_numpy()[np.random.default_rng(0).integers(0, len(frame), 600)]
    rows[:, 2] += 3.0  # petal length: every flower looks like a virginica
    env = {**FAST, "MODELSWAP_MONITOR_WINDOW": "60"}  # buckets of 12 s: the traffic stays in the window
    with serve(store.root, env=env) as server, server.client() as client:
        for start in range(0, 600, 25):
            records = [dict(zip(NAMES, map(float, row), strict=True)) for row in rows[start : start + 25]]
            assert client.post("/v1/models/iris/predict", json={"instances": records}).status_code == 200
        for _ in range(2):  # a client that drops a column: its error, not the model's
            dropped = client.post("/v1/models/iris/predict", json={"instances": [{"sepal_length": 5.0}]})
            assert dropped.status_code == 400
        view = wait_for(
            lambda: (
                (v := server.get_json("/v1/models/iris/monitor"))["versions"]
                and v["versions"][0]["window"]["requests"] == 26
                and v
            ),
            timeout=15,
        )
        assert view, server.get_json("/v1/models/iris/monitor")
        psi = {d["feature"]: d["psi"] for d in view["versions"][0]["window"]["drift"]["features"]}
        assert psi["petal_length"] >= 0.25

        page.goto(server.url + "/")
        traffic = page.locator('#models tr[data-model="iris"] .traffic[data-variant="stable"]')
        expect(traffic.locator(".server-errors")).to_have_text("0.0% server errors")
        expect(traffic.locator(".server-errors")).not_to_have_class(re.compile(r"\bbad\b"))  # 2 of 26: not red
        expect(traffic.locator(".client-errors")).to_have_text("2 client errors (4xx)")
        # red past the model's own error-rate warning threshold (monitor.json), not a fixed 5 %
        window = {"server_error_rate": 0.08, "errors": {"client": 0}, "p99_ms": 1.0, "requests": 100}
        red = (
            "(m) => document.createRange().createContextualFragment(trafficCells(m))"
            ".querySelector('.server-errors').classList.contains('bad')"
        )
        for limit, is_red in ((0.05, True), (0.1, False)):
            thresholds = {"error_rate_warning": limit}
            monitor = {"versions": [{"variant": "stable", "window": window}], "thresholds": thresholds}
            assert page.evaluate(red, monitor) is is_red, limit

        page.goto(server.url + "/#/models/iris")
        charts = page.locator("#drift-charts .drift-version .charts figure")
        expect(charts.first).to_have_attribute("data-feature", "petal_length")  # the drifted one first
        drifted = page.locator('#drift-charts figure[data-feature="petal_length"]')
        title = f"petal_length: PSI {psi['petal_length']:.3f} (warning)"
        expect(drifted.locator("figcaption")).to_have_text(title)
        chart = drifted.locator("svg.chart")
        expect(chart.locator("title").first).to_have_text(title)  # the chart's own name says it too
        expect(chart).to_have_attribute("role", "img")
        # both series, with mass: the reference's hatched bars and the live window's solid ones
        for series in ("rect.bar-ref", "rect.bar-live"):
            heights = chart.locator(f"g.bin {series}").evaluate_all("bars => bars.map(b => +b.getAttribute('height'))")
            assert len(heights) >= 5 and sum(h > 0 for h in heights) >= 1, (series, heights)
        live = chart.locator("g.bin rect.bar-live").evaluate_all("bars => bars.map(b => +b.getAttribute('height'))")
        assert live.index(max(live)) == len(live) - 1  # shifted past the reference's top edge: the last bin
        expect(chart.locator("desc")).to_contain_text("reference")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.locator("#drift-charts").screenshot(path=str(ARTIFACTS / "console-drift.png"))
        # keyboard: the chart takes the focus, keeps it across a refresh, and its values open from the keyboard
        chart.focus()
        expect(chart).to_be_focused()
        page.evaluate("render()")
        expect(page.locator('#drift-charts figure[data-feature="petal_length"] svg.chart')).to_be_focused()
        page.keyboard.press("Tab")
        expect(drifted.locator("summary")).to_be_focused()
        page.keyboard.press("Enter")
        expect(drifted.locator("details table")).to_be_visible()
        expect(page.locator('#drift-charts figure[data-feature="sepal_length"] figcaption')).to_contain_text("(none)")
        expect(page.locator("#chart-requests svg.chart path.line")).to_have_count(1)
        expect(page.locator("#chart-client-errors desc")).to_contain_text("2")


def test_the_overview_lists_every_model_with_its_live_version_and_fleet(
    running: tuple[Server, Store, list[str]], page: Page
) -> None:
    server, _, (first, second, _) = running
    start = time.perf_counter()
    page.goto(server.url + "/")
    row = page.locator('#models tr[data-model="iris"]')
    expect(row.locator(".live")).to_have_text(second)
    loaded = time.perf_counter() - start
    expect(row).to_contain_text("accuracy 0.95")
    expect(row).to_contain_text("converged")
    expect(row).to_contain_text("no alerts")
    shot(page, "console-overview.png")
    paint = page.evaluate("performance.getEntriesByName('first-contentful-paint').map(e => e.startTime)[0]")
    print(f"first paint {paint:.0f} ms after navigation on a fresh server; data in {1000 * loaded:.0f} ms")


def test_without_a_token_the_page_is_read_only(running: tuple[Server, Store, list[str]], page: Page) -> None:
    server, _, (first, second, _) = running
    page.goto(server.url + "/#/models/iris")
    expect(page.locator("#live-version")).to_have_text(second)
    expect(page.get_by_role("button", name=f"Roll back to {first}")).to_be_disabled()
    expect(page.locator("#readonly-hint")).to_be_visible()
    expect(page.locator(f'tr[data-version="{first}"] button')).to_be_disabled()
    expect(page.locator("#history")).to_contain_text("nightly retrain")
    shot(page, "console-model.png")


def test_with_the_token_one_click_rolls_back_with_a_reason(
    running: tuple[Server, Store, list[str]], page: Page
) -> None:
    server, store, (first, second, broken) = running
    page.goto(server.url + "/#/models/iris")
    page.get_by_label("Token").fill(TOKEN)
    page.get_by_role("button", name="Use token").click()
    expect(page.locator("#token-state")).to_have_text("signed in as admin (admin)")
    page.get_by_role("button", name=f"Roll back to {first}").click()
    expect(page.locator("#confirm-text")).to_have_text(f"Roll back iris from {second} to {first}?")
    page.get_by_label("Reason (goes into history)").fill("p99 doubled after the retrain")
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#live-version")).to_have_text(first, timeout=10_000)
    assert store.current("iris") == first
    assert store.history("iris", limit=1)[0].reason == "p99 doubled after the retrain"
    processes = page.locator("#fleet")
    expect(processes).to_contain_text(first, timeout=10_000)  # the fleet follows within the refresh
    expect(page.locator("#history")).to_contain_text("p99 doubled after the retrain")
    # the token is in this tab only: never in the URL, a cookie, or the page
    assert TOKEN not in page.url and not page.context.cookies() and TOKEN not in page.content()
    # a deploy the server refuses shows the server's own message, and nothing changes
    page.locator(f'tr[data-version="{broken}"] button').click()
    page.get_by_label("Reason (goes into history)").fill("try it")
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#error")).to_contain_text("Deploy failed", timeout=10_000)
    expect(page.locator("#error")).to_contain_text(broken)
    assert store.current("iris") == first


def test_protected_reads_make_the_page_ask_for_the_token(tmp_path: Path, page: Page) -> None:
    store = Store(tmp_path / "models")
    store.deploy("iris", store.publish("iris", iris_model(seed=1)).id)
    with serve(store.root, env={"MODELSWAP_PROTECT_READS": "1"}) as server:
        page.goto(server.url + "/")
        expect(page.locator("#needs-token")).to_be_visible()
        page.get_by_label("Token").fill(TOKEN)
        page.get_by_role("button", name="Use token").click()
        expect(page.locator('#models tr[data-model="iris"]')).to_be_visible()


def test_a_rollout_and_a_shadow_show_with_their_figures_and_one_click_aborts(
    running: tuple[Server, Store, list[str]], page: Page
) -> None:
    from modelswap.core.delivery import rollout as ro
    from modelswap.core.delivery.shadow import start_shadow, stop_shadow

    server, store, (first, second, _) = running
    live = store.current("iris")
    candidate = second if live != second else first
    start_shadow(store, "iris", candidate, 0.5, actor="test")
    ro.start_rollout(store, "iris", ro.Plan(candidate, steps=(10, 50, 100), step_seconds=3600), actor="test")
    try:
        page.goto(server.url + "/")
        row = page.locator('#models tr[data-model="iris"]')
        expect(row).to_contain_text(f"rollout {candidate} running at 10%")
        expect(row).to_contain_text(f"shadow {candidate}")
        with server.client() as client:  # traffic for the shadow to compare
            for _ in range(40):
                assert client.post("/v1/models/iris/predict", json={"instances": [[6.0, 2.9, 4.5, 1.5]]}).is_success
        assert wait_for(lambda: (server.get_json("/v1/models/iris/shadow")["stats"] or {}).get("rows"), timeout=15)
        page.goto(server.url + "/#/models/iris")
        expect(page.locator("#rollout")).to_contain_text(f"Rollout of {candidate}: running (10% → 50% → 100%)")
        steps = page.locator("#rollout .rollout-chart")
        expect(steps.locator("figcaption")).to_have_text(
            f"Rollout of {candidate}: running, 10% now, 50% to come, 100% to come"
        )
        expect(steps.locator("g.step")).to_have_count(3)
        expect(page.locator("#shadow")).to_contain_text("on 50% of requests")
        expect(page.locator("#chart-shadow figcaption")).to_have_text(
            "Shadow: agreement with the live version over time"
        )
        expect(page.locator("#chart-shadow svg.chart .mark")).not_to_have_count(0)
        page.get_by_label("Token").fill(TOKEN)
        page.get_by_role("button", name="Use token").click()
        page.get_by_role("button", name="Abort rollout").click()
        expect(page.locator("#confirm-text")).to_have_text("Abort the rollout of iris? The canary stops.")
        page.get_by_label("Reason (goes into history)").fill("pager says no")
        page.get_by_role("button", name="Confirm").click()
        expect(page.locator("#rollout")).to_contain_text("Last rollout of", timeout=10_000)
        expect(page.locator("#rollout")).to_contain_text("aborted")
        assert store.canary("iris") is None and store.current("iris") == live
        abort = store.history("iris", limit=1)[0]
        assert (abort.action, abort.reason) == ("rollout_abort", "pager says no")
    finally:
        stop_shadow(store, "iris", actor="test")


def test_a_rollback_token_can_roll_back_but_not_deploy_and_history_names_it(tmp_path: Path, page: Page) -> None:
    """The on-call engineer's token: rollback enabled, deploy and canary disabled, and a
    model outside the token's models read-only; history says who rolled back."""
    from modelswap.core.access import tokens

    store = Store(tmp_path / "models")
    ids: dict[str, list[str]] = {}
    for model in ("churn", "fraud"):
        ids[model] = [store.publish(model, iris_model(seed=s), metrics={"accuracy": 0.9}).id for s in (1, 2, 3)]
        store.deploy(model, ids[model][0])
        store.deploy(model, ids[model][1])
    alice, _ = tokens.create(tmp_path / "tokens.json", "oncall-alice", "rollback", models=["churn*"])
    env = {**FAST, "MODELSWAP_TOKENS_FILE": str(tmp_path / "tokens.json")}
    with serve(store.root, env=env) as server:
        page.goto(server.url + "/#/models/fraud")
        page.get_by_label("Token").fill(alice)
        page.get_by_role("button", name="Use token").click()
        expect(page.locator("#token-state")).to_have_text("signed in as oncall-alice (rollback)")
        expect(page.get_by_role("button", name=f"Roll back to {ids['fraud'][0]}")).to_be_disabled()  # not hers
        page.goto(server.url + "/#/models/churn")
        rollback = page.get_by_role("button", name=f"Roll back to {ids['churn'][0]}")
        expect(rollback).to_be_enabled()
        deploy = page.locator(f'tr[data-version="{ids["churn"][2]}"] button')
        expect(deploy).to_be_disabled()
        assert deploy.get_attribute("title") == "Needs the deploy role on churn: signed in as oncall-alice (rollback)"
        expect(page.locator("#canary-start")).to_be_disabled()
        rollback.click()
        page.get_by_label("Reason (goes into history)").fill("3 a.m. page")
        page.get_by_role("button", name="Confirm").click()
        expect(page.locator("#history")).to_contain_text("token:oncall-alice", timeout=10_000)
    last = store.history("churn", limit=1)[0]
    assert (last.action, last.actor, last.reason) == ("rollback", "token:oncall-alice", "3 a.m. page")
    assert store.current("churn") == ids["churn"][0]


def test_the_model_page_shows_the_policy_and_where_its_candidate_stands(tmp_path: Path, page: Page) -> None:
    """Without a policy one line says how to set one; with one, its stages in order and who
    set it; a candidate worse than live by more than max_drop is rejected at the gate with
    its figures and reason, and a better one passes the gate and is shown at its shadow."""
    store = Store(tmp_path / "models")
    live = store.publish("iris", iris_model(seed=1), metrics={"accuracy": 0.96}).id
    store.deploy("iris", live)
    policy = {
        "gate": {"metric": "accuracy", "max_drop": 0.02},
        "shadow": {"seconds": 3600, "min_requests": 500, "min_agreement": 0.9},  # stays at its shadow
        "rollout": {"steps": [25, 100], "step_seconds": 60},
        "on_alert": {"alerts": ["ModelswapFeatureDrift"], "retrain": {"dataset": "iris"}},
    }
    env = {**FAST, "MODELSWAP_LEASE_SECONDS": "2"}
    with serve(store.root, env=env) as server:
        page.goto(server.url + "/#/models/iris")
        expect(page.locator("#policy-none")).to_contain_text("modelswap policy set iris policy.json")
        with server.admin() as admin:
            put = admin.put("/v1/models/iris/policy", json={**policy, "reason": "retrains go through the gates"})
            assert put.status_code == 200, put.text
        stages = page.locator("#policy-stages tbody tr")  # the next refresh shows it
        expect(stages).to_have_count(4, timeout=10_000)
        expect(stages.locator("th")).to_have_text(["Gate", "Shadow", "Rollout", "On alert"])
        expect(stages.nth(0)).to_contain_text("accuracy may drop by at most 0.02 from the live version's")
        expect(stages.nth(1)).to_contain_text("1 h on 100% of requests, at least 500 requests")
        expect(stages.nth(1)).to_contain_text("agreement at least 90%")
        expect(stages.nth(2)).to_contain_text("steps 25% → 100%")
        expect(stages.nth(3)).to_contain_text("ModelswapFeatureDrift at warning or above start a retrain")
        expect(page.locator("#policy-set")).to_contain_text("Set by token:admin at 20")
        expect(page.locator("#policy-candidate")).to_contain_text("No candidate yet")

        worse = store.publish("iris", iris_model(seed=2), metrics={"accuracy": 0.90}).id
        candidate = page.locator("#policy-candidate")
        expect(candidate).to_have_attribute("data-state", "rejected", timeout=15_000)
        expect(page.locator("#policy-version")).to_have_text(worse)
        expect(page.locator("#policy-reason")).to_have_text("gate: accuracy dropped from 0.96 to 0.9 (max_drop 0.02)")
        gate = candidate.locator('li.stage[data-stage="gate"]')
        expect(gate.locator(".word")).to_have_text("✗ FAILED")
        for name, value in (("metric", "accuracy"), ("candidate", "0.9"), ("live_value", "0.96"), ("drop", "0.06")):
            expect(gate.locator(f'dl.figures dt:text-is("{name}") + dd')).to_have_text(value)
        expect(candidate.locator('li.stage[data-stage="shadow"] .word')).to_have_text("— not reached")
        expect(candidate.locator('li.stage[data-stage="rollout"] .word')).to_have_text("— not reached")
        expect(page.locator("#policy-history")).to_contain_text("policy_reject")

        better = store.publish("iris", iris_model(seed=3), metrics={"accuracy": 0.97}).id
        expect(page.locator("#policy-version")).to_have_text(better, timeout=15_000)
        expect(candidate).to_have_attribute("data-stage", "shadow", timeout=15_000)
        expect(candidate).to_have_attribute("data-state", "running")
        expect(candidate.locator('li.stage[data-stage="gate"] .word')).to_have_text("✓ passed")
        expect(candidate.locator('li.stage[data-stage="gate"]')).to_contain_text("gate passed")
        expect(candidate.locator('li.stage[data-stage="shadow"] .word')).to_have_text("▶ now")
        expect(candidate.locator('li.stage[data-stage="rollout"] .word')).to_have_text("· to come")
        history = page.locator("#policy-history tbody tr")
        expect(history.first).to_contain_text("policy_stage")
        expect(page.locator("#policy-history")).to_contain_text("policy_set")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.locator("#policy").screenshot(path=str(ARTIFACTS / "console-policy.png"))
