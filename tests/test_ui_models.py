"""The Models tab in a real browser (Chromium, 1366x768): an engineer reads the registry beside the
gate's verdicts and a challenger's comparison report, and promotes it through the gate; the
champion changes and the open cases are rescored; a retrain started from the tab reports its
verdict in the status line. An analyst is refused, beside the button, and nothing changes. A screenshot goes to workbench-data/screenshots/models.png."""
from __future__ import annotations

import time

from core.predictions import champion_version
from evaluation.promotion import retrain_and_gate
from labeling.rescore import stale_open_cases
from test_promotion_gate import MODELS, loop  # noqa: F401 (the fixture)
from test_ui import SHOTS, _free_port, _sign_in


def _page(browser):
    return browser.new_context(viewport={"width": 1366, "height": 768}).new_page()


def _open_models(page, version: str) -> None:
    page.get_by_role("tab", name="Models").click()
    page.wait_for_function(f"() => document.querySelector('#wb-gate-verdicts').innerText.includes('{version}')",
                           timeout=20000)
    page.locator("#wb-model-pick input").click()
    page.get_by_role("option", name=f"{version} (challenger)").click()
    page.wait_for_function("() => document.querySelector('#wb-model-report').innerText.includes('Gate')",
                           timeout=20000)


def _wait_result(page, text: str) -> str:
    page.wait_for_function(f"() => document.querySelector('#wb-model-result').innerText.includes('{text}')",
                           timeout=30000)
    return page.inner_text("#wb-model-result")


def test_an_engineer_promotes_through_the_gate_and_an_analyst_is_refused(loop, taxonomy, queue_config,  # noqa: F811
                                                                         browser):
    from core.accounts import add_user
    from core.config import config_dir
    from core.permissions import load_roles
    from workbench.context import AppContext
    from workbench.ui import serve

    store, champ, _ = loop
    out = retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=None, actor="eng", promote=False,
                           rescore="none", show_progress=False)
    challenger = out["challenger"]
    assert out["gate"]["passed"] and not out["promoted"]
    roles = load_roles(config_dir())
    add_user(store, "boss", "admin", actor="setup", roles=roles, password="boss-pass-123")
    add_user(store, "erin", "engineer", actor="setup", roles=roles, password="erin-pass-123")
    add_user(store, "ann", "analyst", actor="setup", roles=roles, password="ann-pass-123")
    app = AppContext(store=store)
    app._configs["models"] = MODELS  # the test's fast gate (300 resamples, 20 items), as the retrain above used
    port = _free_port()
    serve(app, port=port, block=False)

    page = _page(browser)
    _sign_in(page, port, "ann", "ann-pass-123")
    _open_models(page, challenger)
    page.wait_for_selector("#wb-models-access", state="visible", timeout=20000)
    assert page.locator("#wb-model-promote").is_disabled() and "permission 'promote'" in page.inner_text("#wb-models-access")
    with store.read() as conn:
        assert champion_version(conn) == champ
    page.context.close()

    page = _page(browser)
    _sign_in(page, port, "erin", "erin-pass-123")
    _open_models(page, challenger)
    listed = page.inner_text("#wb-models")
    assert champ in listed and "champion" in listed and "passed" in listed
    assert "lower bound" in page.inner_text("#wb-gate-verdicts")
    for image in ("#wb-model-png img", "#wb-gate-history img"):  # the report's PNG and the gate over time
        page.wait_for_function(f"() => {{ const i = document.querySelector('{image}');"
                               " return i && i.naturalWidth > 0; }", timeout=20000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "models.png"))
    page.screenshot(path=str(SHOTS / "models-report.png"), full_page=True)
    page.fill("#wb-model-reason textarea, #wb-model-reason input", "better on the held-out labels")
    page.click("#wb-model-promote")
    line = _wait_result(page, "promoted through the gate")
    assert challenger in line and "lower bound" in line
    with store.read() as conn:
        assert champion_version(conn) == challenger
    deadline = time.time() + 60  # the open cases are rescored in the background
    while stale_open_cases(store) and time.time() < deadline:
        time.sleep(0.2)
    assert stale_open_cases(store) == []
    page.click("#wb-models-refresh")
    page.wait_for_function("() => document.querySelector('#wb-models-head').innerText.includes('Rescoring open cases"
                           " finished')", timeout=20000)
    assert challenger in page.inner_text("#wb-models-head")

    # A retrain from the tab: in the background, its verdict in the status line (the same data
    # again: an equal challenger, refused) and a new row among the gate's verdicts.
    page.click("#wb-model-retrain")
    _wait_result(page, "Retrain started")
    deadline = time.time() + 90
    while "Retrain finished" not in page.inner_text("#wb-models-head") and time.time() < deadline:
        page.click("#wb-models-refresh")
        page.wait_for_timeout(500)
    head = page.inner_text("#wb-models-head")
    assert "Retrain finished" in head and "not promoted" in head and "by erin" in head, head
    page.screenshot(path=str(SHOTS / "models-retrain.png"))
    assert app.retrain_job is not None and app.retrain_job.result["champion"] == challenger
    assert app.retrain_job.result["challenger"] in page.inner_text("#wb-gate-verdicts")
    with store.read() as conn:
        assert champion_version(conn) == challenger
    page.context.close()
