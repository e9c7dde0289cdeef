"""The readability helpers and the context panel's values, without a browser: local times to
the minute, decoded entities, escaped user text, "50 of 144", campaign "why linked" counts that
add up, and `context_values` in the order `build_context_panel` lays the panel out."""
from __future__ import annotations

import datetime as dt

from workbench.ui.format import decoded, local_time, md_escape, minutes, of_total, page_span, percent, short


def test_times_entities_and_counts():
    utc = dt.timezone.utc
    cet = dt.timezone(dt.timedelta(hours=1), "CET")
    assert local_time("2026-12-03T08:41:59.123456", tz=utc) == "2026-12-03 08:41"
    assert local_time(dt.datetime(2026, 12, 3, 8, 41, 5), tz=cet, zone=True) == "2026-12-03 09:41 CET"
    assert local_time(None) == "" and local_time("not a time") == "not a time"
    assert decoded("so angry &#128545; &amp;amp; done") == "so angry 😡 & done"
    assert decoded("&amp;#128545;") == "😡"  # an entity of an entity
    assert short("word " * 40, 20).endswith("…") and len(short("word " * 40, 20)) <= 20
    assert md_escape("<script>x</script> [link](http://e) **b**") == (
        "&lt;script&gt;x&lt;/script&gt; \\[link\\]\\(http\\://e\\) \\*\\*b\\*\\*")
    assert of_total(50, 144, "members") == "50 of 144 members" and of_total(12, 12, "members") == "12 members"
    assert page_span(3, 50, 144) == (3, 100, 144) and page_span(9, 50, 144) == (3, 100, 144)
    assert page_span(0, 50, 0) == (1, 0, 0)
    assert percent(0.1234) == "12.3%" and percent(None) == "—"
    assert minutes(42) == "42 min" and minutes(150) == "2.5 h" and minutes(4320) == "3.0 d" and minutes(None) == "—"


def test_why_linked_counts_each_member_once():
    from workbench.ui.campaigns import linked_short, reason_kinds, why_linked_md

    members = ([{"linked_by": "same_text,similarity"}] * 80 + [{"linked_by": "similarity"}] * 40
               + [{"linked_by": "similarity,phone:0871"}] * 20 + [{"linked_by": "seed"}] * 4)
    md = why_linked_md(members, 144, {"similarity_threshold": 0.85})
    lines = [ln for ln in md.splitlines() if ln.startswith("- ")]
    assert sum(int(ln[2:].split(":")[0]) for ln in lines) == 144  # each member once: the lines add up
    assert "- 80: the same text as another member and similar (cosine ≥ 0.85) to another text" in md
    assert "add to 244 for 144 members" in md and "{" not in md
    assert reason_kinds("phone:1,similarity,url:x") == ("similarity", "phone", "url")
    assert reason_kinds(None) == ("seed",)
    assert linked_short("same_text,similarity", 0.934) == "copy, similar 0.93"


def test_context_values_follow_the_panel(sqlite_store, taxonomy, queue_config):
    from labeling.cases import build_cases
    from labeling.claims import next_case
    from labeling.context import case_context
    from labeling.decisions import decide
    from labeling.notes import add_note
    from test_queue_support import add_scored
    from workbench.context import AppContext
    from workbench.ui.context_panel import context_values, history_rows, policy_html

    add_scored(sqlite_store, taxonomy, [{"id": "a", "label": "scam", "p": 0.9, "text": "claim your prize"}])
    build_cases(sqlite_store, taxonomy, queue_config, progress=False)
    case = next_case(sqlite_store, "ann", "fraud", config=queue_config)
    decide(sqlite_store, taxonomy, case["id"], "ann", "scam", rationale="<b>prize</b> lure", config=queue_config)
    add_note(sqlite_store, "item", "a", "see [this](http://evil) <i>now</i>", "ann")
    app = AppContext(store=sqlite_store)
    values = context_values(app, {"case": {"id": case["id"], "campaign_id": None}}, "bob")
    assert len(values) == 3 and len(context_values(app, None, "bob")) == 3
    panel, notes, target = values[:3]
    assert "TS-FRAUD-2.1" in panel and "<b>Covers:</b>" in panel and "<i>Example:</i>" in panel
    history = history_rows(case_context(sqlite_store, taxonomy, case["id"], "bob", app.review())["history"])
    assert history[0][0].endswith(" · ann") and "scam / block_sender (review) current" in history[0][1]
    assert "&lt;b&gt;" not in history[0][2] and "<b>prize</b> lure" == history[0][2]  # a row cell is plain text
    # the panel's tables are HTML made on the server: the cell escaped once, never markup; times
    # are <time> elements (the page shows them in the viewer's zone), UTC to the minute without script
    assert f"data-case='{case['id']}'" in panel and "&lt;b&gt;prize&lt;/b&gt; lure" in panel
    assert "<b>prize</b>" not in panel and "scam / block_sender (review) current" in panel
    assert "<time class='wb-t' datetime='" in panel and " UTC</time> · ann" in panel
    assert "No other items" in panel and "No author" in panel
    assert "&lt;i&gt;now&lt;/i&gt;" in notes and "<i>now</i>" not in notes and "<a" not in notes  # a note stays text
    assert "<time class='wb-t'" in notes and target["choices"] == ["item"]
    assert policy_html(None).startswith("<div>No case")
    assert history_rows([{"id": 1, "current": False, "superseded_by": 2, "created_at": "2026-01-01T10:00:00",
                          "reviewer": "x", "kind": "review", "label": "spam", "action": "remove",
                          "rationale": None}])[0][1] == "#1 spam / remove (review) superseded by #2"


def test_n_left_line_counts_as_queue_status(sqlite_store, taxonomy, queue_config):
    """The "N left" line after each key reads one queue (`queue_counts`); it says what the
    counts timer's `queue_status` says: waiting (open or escalated) and overdue, per queue."""
    from sqlalchemy import update

    from core.schema import Case
    from labeling.cases import build_cases, queue_counts, queue_status
    from labeling.claims import next_case
    from test_queue_support import T0, add_scored
    from workbench.ui.review import status_html

    add_scored(sqlite_store, taxonomy, [{"id": f"s{i}", "label": "spam", "p": 0.9} for i in range(5)]
               + [{"id": f"f{i}", "label": "scam", "p": 0.9} for i in range(3)])
    # on the items' own clock: an SLA counts from arrival (T0), so read against the wall clock
    # every case of T0 would be overdue
    build_cases(sqlite_store, taxonomy, queue_config, progress=False, now=T0)
    next_case(sqlite_store, "ann", "spam", config=queue_config)  # claimed: no longer waiting
    with sqlite_store.begin() as conn:  # two overdue
        ids = conn.execute(Case.__table__.select().where(Case.queue == "spam", Case.state == "open")).all()
        conn.execute(update(Case.__table__).where(Case.id.in_([r.id for r in ids[:2]]))
                     .values(due_at=dt.datetime(2020, 1, 1)))
    status = queue_status(sqlite_store, queue_config, now=T0)
    assert status["spam"]["waiting"] == 4 and status["spam"]["overdue"] == 2
    for q in queue_config.queues:
        counts = queue_counts(sqlite_store, q, now=T0)
        assert counts == {"waiting": status[q]["waiting"], "overdue": status[q]["overdue"]}, q
        assert status_html({q: counts}, q, None) == status_html(status, q, None)
