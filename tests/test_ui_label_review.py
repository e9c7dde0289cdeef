"""A lead works the label-review queue in the browser (issue 18): the case shows why it is there
(given label and who gave it, the model's label and confidence, label quality), and choosing
another label with a rationale writes a correction that supersedes the analyst's decision."""
from __future__ import annotations

import time

import pytest

from core.labels import current_labels
from labeling.label_errors import find_label_errors
from labeling.queue_config import load_queue_config
from core.config import config_dir
from test_label_errors import decided_store
from test_queue_support import T0
from test_seeding import BagOfWords
from test_ui import SHOTS, _free_port, _sign_in


@pytest.fixture
def reviewed(sqlite_store, taxonomy):
    """40 decided items, bob's slip on s3 (spam decided benign) queued for re-review."""
    cfg = load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"calibration_sets": [],
                                                                                "qa_share": 0.0})
    decided_store(sqlite_store, taxonomy, cfg, 20, {"s3": "benign"})
    out = find_label_errors(sqlite_store, taxonomy, cfg, "eng", BagOfWords(), now=T0, max_cases=1)
    assert [c["item_id"] for c in out["cases"]] == ["s3"], out["cases"]
    return sqlite_store


def test_a_lead_corrects_a_flagged_decision_in_the_review_screen(reviewed, browser_page):
    from core.accounts import add_user
    from core.permissions import load_roles
    from workbench.context import AppContext
    from workbench.ui import serve

    roles = load_roles(config_dir())
    add_user(reviewed, "boss", "admin", actor="setup", roles=roles, password="boss-pass-123")
    add_user(reviewed, "lena", "lead", actor="setup", roles=roles, password="lena-pass-123")
    before = current_labels(reviewed, ["s3"])["s3"]
    assert (before["label"], before["reviewer"]) == ("benign", "bob")
    port = _free_port()
    app = serve(AppContext(store=reviewed), port=port, queue="label-review", block=False)
    page = browser_page
    try:
        _sign_in(page, port, "lena", "lena-pass-123")
        page.keyboard.press("n")
        page.wait_for_selector("text=/Case \\d+ · label-review/", timeout=20000)
        page.wait_for_timeout(600)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "review-label-error.png"))
        line = page.inner_text("#wb-relabel-line")  # the decision under review, before any key
        assert "Re-review of bob's decision: benign" in line and "Out-of-fold model: spam (0.9" in line
        assert "label quality 0.0" in line and "another writes a correction" in line
        assert "label error? given benign by bob, model says spam" in page.inner_text(".wb-why")
        page.get_by_role("radio", name="spam").first.check()
        page.fill("#wb-rationale textarea", "prize and call-now wording: spam, bob's slip")
        page.click("#wb-decide")
        deadline = time.time() + 20
        while time.time() < deadline and current_labels(reviewed, ["s3"])["s3"]["id"] == before["id"]:
            time.sleep(0.2)
        after = current_labels(reviewed, ["s3"])["s3"]
        assert (after["label"], after["reviewer"], after["supersedes_id"]) == ("spam", "lena", before["id"])
        page.wait_for_selector(f"text=Corrected decision {before['id']} to spam", timeout=20000)
        assert "Press u to undo" not in page.inner_text("body")  # a re-review is not taken back with u
        page.screenshot(path=str(SHOTS / "review-label-error-corrected.png"))
    finally:
        app.close()


def test_saved_message_says_what_a_re_review_did():
    from workbench.ui.render import saved_message

    fixed = {"label_review": {"outcome": "corrected", "decision_id": 7, "correction_id": 9}, "decision_ids": [9]}
    assert saved_message(3, "spam", "remove", fixed) == \
        "Corrected decision 7 to spam (correction 9 supersedes it); case 3 closed."
    kept = {"label_review": {"outcome": "confirmed", "decision_id": 7, "correction_id": None}, "decision_ids": []}
    assert saved_message(3, "benign", "no_action", kept).startswith("Confirmed decision 7 (benign); no new decision.")
    moot = {"label_review": {"outcome": "superseded", "decision_id": 7, "superseded_by": 8}, "decision_ids": []}
    assert saved_message(3, "spam", "remove", moot) == ("Decision 7 was superseded by 8 after case 3 was queued: "
                                                        "the later decision stands; case closed without a change.")
    bulk = {"decision_ids": [1, 2, 3]}
    assert saved_message(3, "scam", "remove", bulk) == "Saved case 3: scam / remove on 3 items. Press u to undo."
