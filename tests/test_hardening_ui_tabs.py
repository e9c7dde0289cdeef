"""The tabs beside Review (Campaigns, Appeals, Search, Operations, Evaluation, Models) attacked
through their callbacks, without a browser: values a client may send (a page of NaN, a clicked
cell of text, an appeal id of 1e30, a label no policy has, an action with markup), a store that
fails under them, and a reader the role policy refuses (a role without `read`, a session that
ended) each get one line on screen; nothing is stored, shown or crashed into a traceback."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.pool import QueuePool

from core.config import config_dir
from core.schema import Decision
from labeling.queue_config import load_queue_config
from test_campaign_bulk_integrity import _App, _camp
from test_hardening_ui_render import _live
from test_queue_support import T0
from test_ui_tabs_fixes import _Accounts as _TabsAccounts
from test_ui_tabs_fixes import _blocks_fns, _campaigns, _models

NAN, INF = float("nan"), float("inf")
HOSTILE = "<img src='http://attacker.test/x'> [clk](javascript:alert(1)) www.attacker.test"


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"qa_share": 0.0,
                                                                                 "calibration_sets": []})


def _decisions(store) -> list[tuple]:
    with store.read() as conn:
        return [tuple(r) for r in conn.execute(select(Decision.__table__).order_by(Decision.__table__.c.id)).all()]


def _search(app):
    from workbench.ui.search import build_search_tab

    return _blocks_fns(lambda who, tab: build_search_tab(app, who))


def _appeals(app):
    from workbench.ui.appeals import build_appeals_tab

    return _blocks_fns(lambda who, tab: build_appeals_tab(app, tab, who))


def _operations(app):
    from workbench.ui.operations import build_operations_tab

    return _blocks_fns(lambda who, tab: build_operations_tab(app, tab))


def _evaluation(app):
    from workbench.ui.evaluation import build_evaluation_tab

    app.config_dir, app._once = config_dir(), lambda key, load: load()  # what AppContext caches
    return _blocks_fns(lambda who, tab: build_evaluation_tab(app, who))


def _one_line(value) -> bool:
    return isinstance(value, str) and "\n" not in value.strip() and "SQL" not in value and "Traceback" not in value


def _open_appeal(store, taxonomy, cfg) -> int:
    """ann decided an item as scam; its author appealed: the open appeal's case id."""
    from labeling import decisions as DEC
    from labeling.appeals import appeal
    from labeling.claims import next_case

    own = next_case(store, "ann", "fraud", now=T0, config=cfg)
    DEC.decide(store, taxonomy, own["id"], "ann", "scam", now=T0, config=cfg)
    return appeal(store, own["item_id"], "user1", "I am a real shop", taxonomy, now=T0, config=cfg)["id"]


# --- 1. values a client may send -------------------------------------------------------------------

@pytest.mark.parametrize("page", [NAN, INF, "abc"])
def test_a_search_page_a_client_sends_is_a_page(any_store, taxonomy, cfg, page):
    _camp(any_store, taxonomy, cfg, ["m0", "m1"])
    fns = _search(_App(any_store, taxonomy, cfg))
    for step in ("nxt", "prev"):
        summary, rows, _, shown = fns[step][0]("message", page, "lead", None)  # was: ValueError, OverflowError
        assert summary.startswith("**2 items**") and len(rows) == 2 and shown >= 1


@pytest.mark.parametrize("cell", ["abc", NAN, 1e30, -3, HOSTILE])
def test_a_clicked_search_cell_that_is_no_case_id_is_refused(sqlite_store, taxonomy, cfg, cell):
    fns = _search(_App(sqlite_store, taxonomy, cfg))
    case, note = fns["pick"][0](None, SimpleNamespace(row_value=[cell, "m0"], index=[0, 0]))
    assert case is None and note.startswith("**Not a case:** the case id must be a whole number")  # was: a crash,
    assert _live(note) == [] and _one_line(note)  # or 1e30 put in the box Review opens cases from
    case, note = fns["pick"][0](None, SimpleNamespace(row_value=[7, "m0"], index=[0, 0]))
    assert case == 7 and note.startswith("Case **7**")


def test_a_clicked_row_of_inf_picks_nothing(sqlite_store, taxonomy, cfg):
    app = _App(sqlite_store, taxonomy, cfg)
    evt = SimpleNamespace(row_value=[INF, "m0"], index=[0, 0])
    assert _campaigns(app)["pick"][0](None, "lead", evt, None) == ({"__type__": "update"},) * 7  # was: OverflowError
    assert _appeals(app)["row_picked"][0](None, evt) == {"__type__": "update"}


@pytest.mark.parametrize("bad", [INF, 1e30, 2**63, "abc"])
def test_an_appeal_id_out_of_range_is_refused_in_one_line(any_store, taxonomy, cfg, bad):
    _camp(any_store, taxonomy, cfg, ["m0", "m1"])
    _open_appeal(any_store, taxonomy, cfg)
    before = _decisions(any_store)
    said = _appeals(_App(any_store, taxonomy, cfg))["resolve"][0](bad, "confirm", "", "", "checked", "lou", None)[0]
    assert said.startswith("**Not resolved:** the appeal's case id must be a whole number")  # was: OverflowError,
    assert _one_line(said) and "int\\(\\)" not in said  # or the store's DataError with its SQL
    assert _decisions(any_store) == before


def test_a_label_no_policy_has_leaves_the_action_box_as_it_is(sqlite_store, taxonomy, cfg):
    app = _App(sqlite_store, taxonomy, cfg)
    for on_label in (_campaigns(app)["on_label"][0], _appeals(app)["on_label"][0]):
        assert on_label("no-such-label") == {"__type__": "update"}  # was: KeyError
        assert on_label("scam")["value"] == taxonomy.policies["scam"].default_action


def test_a_refused_bulk_decision_says_the_clients_action_as_text(sqlite_store, taxonomy, cfg):
    cid = _camp(sqlite_store, taxonomy, cfg, ["m0", "m1"])
    said = _campaigns(_App(sqlite_store, taxonomy, cfg))["act_on_campaign"][0](cid, "lead", "scam", HOSTILE, "", False,
                                                                              None)
    assert said.startswith("Warning: Not saved: action") and "is not allowed for" in said
    assert _live(said) == [], _live(said)  # was: the action box's markup rendered as a tag and a link
    assert _decisions(sqlite_store) == []


def test_the_saved_line_names_the_action_applied(sqlite_store, taxonomy, cfg):
    cid = _camp(sqlite_store, taxonomy, cfg, ["m0", "m1"])
    said = _campaigns(_App(sqlite_store, taxonomy, cfg))["act_on_campaign"][0](cid, "lead", "scam", "", "", False, None)
    default = taxonomy.policies["scam"].default_action
    assert said.startswith(f"Saved: scam / {default} applied to 2 items")  # was: "Saved: scam /  applied"
    with sqlite_store.read() as conn:
        assert set(conn.execute(select(Decision.__table__.c.action)).scalars()) == {default}


# --- 2. a store that fails under a tab ---------------------------------------------------------------

def _gone(store, *tables: str) -> None:
    """The store loses `tables` (renamed away): every query on them fails in the driver."""
    with store.begin() as conn:
        for t in tables:
            conn.execute(text(f"ALTER TABLE {t} RENAME TO {t}_gone"))


def test_a_failing_store_is_one_line_on_the_campaigns_tab(any_store, taxonomy, cfg):
    cid = _camp(any_store, taxonomy, cfg, ["m0", "m1"])
    fns = _campaigns(_App(any_store, taxonomy, cfg))
    _gone(any_store, "campaigns", "cases")
    cell = fns["campaign_table"][0]()[0][3]
    assert _one_line(cell) and "the store is busy or unavailable" in cell  # was: the SQL, over many lines
    body = fns["first"][0](cid, "lead", None)[0]
    assert body.startswith("Warning: the store is busy or unavailable") and _one_line(body)
    said = fns["act_on_campaign"][0](cid, "lead", "scam", "block_sender", "", False, None)  # was: a traceback
    assert said.startswith("Warning: Not saved: the store is busy or unavailable") and _one_line(said)


def test_a_failing_store_is_one_line_on_the_other_tabs(any_store, taxonomy, cfg):
    _camp(any_store, taxonomy, cfg, ["m0", "m1"])
    case = _open_appeal(any_store, taxonomy, cfg)
    app = _App(any_store, taxonomy, cfg)
    app.models = lambda: None
    appeals, search, ops = _appeals(app), _search(app), _operations(app)
    models, evaluation = _models(app), _evaluation(app)
    _gone(any_store, "cases", "items", "decisions", "model_versions")
    said = [appeals["listing"][0]("lou", None)[1]["label"], appeals["show"][0](case, "lou", None)[-1],
            appeals["resolve"][0](case, "confirm", "", "", "checked", "lou", None)[0],
            search["first"][0]("message", "lead", None)[0], ops["kpis"][0](None)[0],
            models["listing"][0]("eng", None)[0], evaluation["evaluation"][0]("lead", None)]
    for line in said:  # each was a traceback (Gradio's bare "Error")
        assert _one_line(line) and "the store is busy or unavailable" in line, line


def test_a_connection_pool_timeout_is_a_busy_store():
    from labeling.errors import QueueError
    from sqlalchemy.exc import TimeoutError as PoolTimeout
    from workbench.ui.review_hold import STORE_ERRORS, refusal

    engine = create_engine("sqlite://", poolclass=QueuePool, pool_size=1, max_overflow=0, pool_timeout=0.01)
    with engine.connect():
        with pytest.raises(PoolTimeout) as caught:
            engine.connect()  # every connection taken: what a loaded server's Review key meets
    assert isinstance(caught.value, STORE_ERRORS)  # was: not a store error, so Gradio's bare "Error"
    said = refusal(caught.value)
    assert isinstance(said, QueueError) and str(said) == (
        "the store is busy or unavailable (TimeoutError), nothing was saved: press the key again")


# --- 3. who reads: the role policy, on every call ----------------------------------------------------

class _Accounts(_TabsAccounts):
    def web(self):
        from core.web_config import load_web_config

        return load_web_config(config_dir())


@pytest.fixture
def no_read_roles():
    """roles.yaml with a role that may ingest and nothing else (no `read`), installed for one test."""
    from core.hooks import pm
    from core.permissions import RolePolicy, RolesConfig

    cfg = RolesConfig(roles={"admin": {"allow": ["*"]}, "viewer": {"allow": ["read"]},
                             "loader": {"allow": ["ingest"]}}).resolve(config_dir() / "roles.yaml")
    policy = RolePolicy(cfg).install(pm)
    yield cfg
    if pm.is_registered(policy):
        pm.unregister(policy)


def test_a_reader_without_read_or_a_live_session_is_refused(sqlite_store, taxonomy, cfg, no_read_roles):
    from core.accounts import add_user

    cid = _camp(sqlite_store, taxonomy, cfg, ["m0", "m1"])
    case = _open_appeal(sqlite_store, taxonomy, cfg)
    add_user(sqlite_store, "ada", "admin", actor="setup", roles=no_read_roles)  # the first account
    add_user(sqlite_store, "lee", "loader", actor="setup", roles=no_read_roles)
    add_user(sqlite_store, "vic", "viewer", actor="setup", roles=no_read_roles)
    app = _Accounts(sqlite_store, taxonomy, cfg, no_read_roles)
    camps, appeals, ops, evaluation = _campaigns(app), _appeals(app), _operations(app), _evaluation(app)
    loader = SimpleNamespace(username="lee")
    ended = SimpleNamespace(username="vic", cookies={"access-token": "ended-long-ago"})
    for who, why in ((loader, "lee (loader) may not read"), (ended, "your session ended")):
        table = camps["campaign_table"][0]("", who)
        assert table == [[None, 0, "", table[0][3], "", "", ""]] and why in table[0][3]  # was: every campaign
        assert camps["first"][0](cid, "", who)[0].startswith("Warning: ")  # was: the campaign and its members
        assert why in camps["first"][0](cid, "", who)[0].replace("\\", "")
        assert appeals["listing"][0]("", who)[0] == [] and why in appeals["listing"][0]("", who)[1]["label"]
        assert appeals["show"][0](case, "", who)[0] == "Pick an open appeal."  # was: the appeal, masked
        assert ops["kpis"][0](who)[1] == [] and why in ops["kpis"][0](who)[0].replace("\\", "")  # was: team KPIs
    assert why in evaluation["evaluation"][0]("", ended)
    assert "lee (loader) may not read evaluation report" in evaluation["evaluation"][0]("", loader)
    viewer = SimpleNamespace(username="vic")  # a live session with `read`: shown as before
    assert camps["campaign_table"][0]("", viewer)[0][0] == cid
    assert "Applying a decision" not in camps["first"][0](cid, "", viewer)[0]
    assert len(appeals["listing"][0]("", viewer)[0]) == 1 and ops["kpis"][0](viewer)[1] != []
