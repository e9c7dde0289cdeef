"""The Evaluation tab in a real browser at 1366x768: the report's sections as tables and plots
(not JSON), the same HTML the report file holds, and the analyst section only for a lead.

Saves workbench-data/screenshots/evaluation.png (the viewport) and evaluation-full.png.
"""
import pytest
from eval_support import seed_reviews
from test_ui import SHOTS, _free_port, _sign_in

from core.config import config_dir
from evaluation.config import load_evaluation_config
from evaluation.drift import load_drift_config
from evaluation.report import write_report


@pytest.fixture
def reviewed(sqlite_store, make_scored, taxonomy, queue_config):
    seed_reviews(sqlite_store, make_scored, taxonomy, queue_config)
    return sqlite_store


def _open_tab(page, port):
    page.get_by_role("tab", name="Evaluation").click()
    page.click("#wb-eval-compute")
    page.wait_for_selector("#wb-eval-report h2:has-text('QA-audit estimates')", timeout=60000)
    page.wait_for_timeout(500)


def test_evaluation_tab_renders_the_report_as_tables(reviewed, taxonomy, browser_page, tmp_path):
    from workbench.context import AppContext
    from workbench.ui import serve

    port = _free_port()
    app = serve(AppContext(store=reviewed), port=port, analyst="lea", block=False)
    page = browser_page
    try:
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#wb-next")
        _open_tab(page, port)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "evaluation.png"))
        page.screenshot(path=str(SHOTS / "evaluation-full.png"), full_page=True)
        report = page.locator("#wb-eval-report")
        text = report.inner_text()
        for title in ("QA-audit estimates", "Override rate over time", "Slices and bias", "Analyst quality",
                      "Calibration on human labels", "Drift"):
            assert title in text
        assert report.locator("table").count() >= 8 and report.locator("img").count() >= 4
        assert "{" not in text.split("Drift")[0]  # tables, not JSON
        assert "BPSN AUC" in text and "identity=religion" in text
        # The file report renders the same sections.
        out = write_report(reviewed, taxonomy, tmp_path / "rep", config=load_evaluation_config(config_dir()),
                           drift_config=load_drift_config(config_dir()))
        page_html = (tmp_path / "rep" / "report.html").read_text()
        assert "data:image/png;base64," in page_html and "<link" not in page_html and "<script" not in page_html
        for row in out["analysts"]["analysts"]:
            assert row["analyst"] in text
        # the table fits the laptop screen without a page-wide horizontal scroll
        assert page.evaluate("document.documentElement.scrollWidth") <= 1366
    finally:
        app.close()


def test_an_analyst_does_not_see_analyst_quality(reviewed, browser_page):
    from core.accounts import add_user
    from core.permissions import load_roles
    from workbench.context import AppContext
    from workbench.ui import serve

    roles = load_roles(config_dir())
    add_user(reviewed, "boss", "admin", actor="setup", roles=roles, password="boss-pass-123")
    add_user(reviewed, "ann", "analyst", actor="setup", roles=roles, password="ann-pass-123")
    port = _free_port()
    app = serve(AppContext(store=reviewed), port=port, block=False)
    page = browser_page
    try:
        _sign_in(page, port, "ann", "ann-pass-123")
        _open_tab(page, port)
        text = page.locator("#wb-eval-report").inner_text()
        assert "Not shown" in text and "analyst_quality" in text
        assert "QA pass rate" not in text  # the analyst table is not there
    finally:
        app.close()
