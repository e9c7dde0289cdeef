"""Three known defects, each held by a test that fails without its fix:

1. a merged campaign's case left waiting (until the next `cluster` run closes it) was served by
   a claim, though deciding it is refused (labeling/claims.py);
2. Gradio's `app.tokens` lookups and sign-in writes (`SessionTokens`) ran store calls on the
   event loop, so one slow store call stalled every request (workbench/ui/web_guard.py);
3. on the Review screen, re-reviewing a decision with a custom policy reference and keeping its
   label was saved as a correction, resetting the reference to the taxonomy's default: the box's
   prefilled reference was taken for a choice (workbench/ui/review_actions.py `chosen_fields`).

Concurrency in 2 is shown by order and counts, not timings: the slow store call waits for a
ticker on the event loop to advance, which it does only while the loop is free (the wait is
bounded, so a blocked loop fails instead of hanging).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import time
import types

import pytest
from sqlalchemy import insert, select, update

from core.config import config_dir
from core.labels import current_labels
from core.schema import Campaign, CampaignMember, Case, OutboxEvent
from labeling import decisions as DEC
from labeling.cases import build_cases
from labeling.claims import claim_case, next_case
from labeling.errors import QueueError
from labeling.queue_config import load_queue_config
from test_queue_support import T0, add_campaign, add_scored

C = Case.__table__
HANG = 10  # seconds a slow store call waits for the loop before giving up (reached only on failure)


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"qa_share": 0.0, "calibration_sets": []})


# -- 1. a merged campaign's waiting case is never claimed ----------------------------------------------
def _campaign_case(store, cid) -> dict:
    with store.read() as conn:
        return dict(conn.execute(select(C).where(C.c.campaign_id == cid)).mappings().one())


def _two_campaigns(store, taxonomy, cfg) -> tuple[dict, dict]:
    """Campaigns `keep` and `gone`, each with its waiting case; `gone`'s case ranks first."""
    add_scored(store, taxonomy, [{"id": m, "label": "scam", "p": 0.8} for m in ("a0", "a1", "a2", "b0", "b1")])
    keep, gone = add_campaign(store, ["a0", "a1", "a2"]), add_campaign(store, ["b0", "b1"])
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    live, stale = _campaign_case(store, keep), _campaign_case(store, gone)
    assert live["queue"] == stale["queue"] and live["state"] == stale["state"] == "open"
    with store.begin() as conn:
        conn.execute(update(C).where(C.c.id == stale["id"]).values(priority=live["priority"] + 1.0))
    return live, stale


def _merge(store, gone: int, into: int) -> None:
    """What a clustering run does when `gone` is absorbed (its case is closed only by the next run)."""
    with store.begin() as conn:
        conn.execute(update(CampaignMember.__table__).where(CampaignMember.__table__.c.campaign_id == gone)
                     .values(campaign_id=into, added_at=T0 + dt.timedelta(hours=1)))
        conn.execute(update(Campaign.__table__).where(Campaign.__table__.c.id == gone).values(status="merged", size=0))


def test_a_merged_campaigns_waiting_case_is_not_claimed(any_store, taxonomy, cfg):
    live, stale = _two_campaigns(any_store, taxonomy, cfg)
    _merge(any_store, stale["campaign_id"], live["campaign_id"])
    got = next_case(any_store, "ann", live["queue"], cfg, now=T0, detail=False)
    assert got is not None and got["id"] == live["id"]  # the live case, though the merged one ranks first
    assert next_case(any_store, "bob", live["queue"], cfg, now=T0, detail=False) is None  # nothing else waits
    with pytest.raises(QueueError, match=f"case {stale['id']} is of campaign {stale['campaign_id']}, which is merged"):
        claim_case(any_store, stale["id"], "bob", cfg, now=T0)  # nor by its id
    after = _campaign_case(any_store, stale["campaign_id"])
    assert (after["state"], after["claimed_by"], after["updated_at"]) == ("open", None, stale["updated_at"])


def test_a_claim_on_a_campaign_merged_since_is_not_resumed(any_store, taxonomy, cfg):
    live, stale = _two_campaigns(any_store, taxonomy, cfg)
    assert next_case(any_store, "ann", live["queue"], cfg, now=T0, detail=False)["id"] == stale["id"]
    _merge(any_store, stale["campaign_id"], live["campaign_id"])  # while ann holds its case
    again = next_case(any_store, "ann", live["queue"], cfg, now=T0, detail=False, resume=True)
    assert again is not None and again["id"] == live["id"]  # a reload moves on to a case she can decide


# -- 2. Gradio's token calls leave the event loop free -------------------------------------------------
def _slow(real, ticks: list, seen: list, tag: str):
    """`real`, once the event loop's ticker has advanced 3 times since the call began (a free loop
    does so at once; a blocked one never, so it gives up after HANG). `seen`: (tag, ticks it saw)."""
    def call(*args, **kwargs):
        start, give_up = ticks[0], time.monotonic() + HANG
        while ticks[0] < start + 3 and time.monotonic() < give_up:
            time.sleep(0.001)
        seen.append((tag, ticks[0] - start))
        return real(*args, **kwargs)
    return call


class _Gradio:
    """Gradio's routes as far as `app.tokens` goes: `/login` sets a token after a good password,
    and every route asks `tokens.get(cookie)` for the user, synchronously inside async code."""

    def __init__(self, server, seen: list) -> None:
        self.server, self.seen = server, seen

    async def __call__(self, scope, receive, send) -> None:
        cookies = dict(p.strip().split("=", 1) for k, v in scope["headers"] if k == b"cookie"
                       for p in v.decode().split(";") if "=" in p)
        token = cookies.get(f"access-token-unsecure-{self.server.cookie_id}")
        headers = []
        if scope["path"] == "/login":
            self.server.tokens["tok-new"] = "ann"
            headers = [(b"set-cookie", b"access-token-unsecure-x=tok-new; Path=/")]
        user = self.server.tokens.get(token)
        self.seen.append(("response", user))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": json.dumps({"user": user}).encode()})


def _guarded_call(tmp_path, store, seen: list, ticks: list, method: str, path: str, cookie: str | None):
    """Run one request through the guard around `_Gradio` while a ticker runs on the loop."""
    from workbench.context import AppContext
    from workbench.ui.web_guard import WebGuard

    configs = tmp_path / "configs"
    if not configs.exists():
        shutil.copytree(config_dir(), configs)
    server = types.SimpleNamespace(auth=object(), tokens={}, cookie_id="x")
    guard = WebGuard(_Gradio(server, seen), ctx=AppContext(store=store, config_dir_=configs), port=7860)
    headers = [(b"host", b"127.0.0.1:7860"), (b"origin", b"http://127.0.0.1:7860")]
    if cookie:
        headers.append((b"cookie", f"{guard.cookie_name}={cookie}".encode()))
    scope = {"type": "http", "method": method, "path": path, "scheme": "http", "app": server,
             "client": ("192.0.2.7", 5555), "query_string": b"", "headers": headers}
    got: dict = {}

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            got["status"] = message["status"]
            seen.append(("sent", message["status"]))
        else:
            got["body"] = json.loads(message["body"])

    async def main() -> None:
        finished = asyncio.Event()

        async def ticker() -> None:
            while not finished.is_set():
                ticks[0] += 1
                await asyncio.sleep(0.001)

        async def request() -> None:
            try:
                await guard(scope, receive, send)
            finally:
                finished.set()

        await asyncio.wait_for(asyncio.gather(ticker(), request()), HANG * 4)

    asyncio.run(main())
    return got


def _accounts(store) -> None:
    from core.accounts import add_user
    from core.permissions import load_roles

    roles = load_roles(config_dir())
    add_user(store, "boss", "admin", actor="setup", roles=roles, password="boss-pass-123")
    add_user(store, "ann", "analyst", actor="setup", roles=roles, password="ann-pass-123")


def test_a_slow_session_lookup_leaves_the_event_loop_free(sqlite_store, tmp_path, monkeypatch):
    from core import web_sessions

    _accounts(sqlite_store)
    web_sessions.start_session(sqlite_store, "tok-ann", "ann", absolute=dt.timedelta(hours=12))
    seen: list = []
    ticks = [0]
    monkeypatch.setattr(web_sessions, "session_user", _slow(web_sessions.session_user, ticks, seen, "lookup"))
    got = _guarded_call(tmp_path, sqlite_store, seen, ticks, "GET", "/gradio_api/user", "tok-ann")
    assert got == {"status": 200, "body": {"user": "ann"}}  # Gradio sees the session's user, as before
    lookups = [n for tag, n in seen if tag == "lookup"]
    assert lookups and all(n >= 3 for n in lookups), seen  # the loop kept ticking through every store call
    assert [t for t, _ in seen] == ["lookup"] * len(lookups) + ["response", "sent"]
    seen.clear()
    got = _guarded_call(tmp_path, sqlite_store, seen, ticks, "GET", "/gradio_api/user", "tok-unknown")
    assert got["body"] == {"user": None} and all(n >= 3 for tag, n in seen if tag == "lookup"), seen


def test_a_slow_session_start_leaves_the_loop_free_and_is_stored_before_the_answer(sqlite_store, tmp_path,
                                                                                     monkeypatch):
    from core import web_sessions

    _accounts(sqlite_store)
    seen: list = []
    ticks = [0]
    monkeypatch.setattr(web_sessions, "start_session", _slow(web_sessions.start_session, ticks, seen, "start"))
    got = _guarded_call(tmp_path, sqlite_store, seen, ticks, "POST", "/login", None)
    assert got["status"] == 200
    assert [t for t, _ in seen] == ["response", "start", "sent"], seen  # stored before the answer left
    assert dict(seen)["start"] >= 3, seen  # and the loop kept ticking while it was written
    [live] = web_sessions.list_sessions(sqlite_store, "ann")
    assert live["client"] == "192.0.2.7"  # the sign-in's client, as before
    info = web_sessions.session_user(sqlite_store, "tok-new", idle=dt.timedelta(minutes=30))
    assert info is not None and info.principal.name == "ann"


# -- 3. re-reviewing a decision with a custom policy reference on the Review screen ---------------------
def _review_tab(store):
    """The Review tab's callbacks by name (no accounts: the analyst box names the actor)."""
    import gradio as gr

    from workbench.context import AppContext
    from workbench.ui.review import build_review_tab

    with gr.Blocks() as demo:
        build_review_tab(AppContext(store=store), demo, "lena", "label-review")
    fns = demo.fns.values() if isinstance(demo.fns, dict) else demo.fns
    return {getattr(f.fn, "__name__", ""): f.fn for f in fns}


def _screen(fns, who: str, queue: str) -> tuple[dict, str, str, str]:
    """Claim the next case of `queue`: its packet and the label, action and policy reference shown."""
    out = fns["claim"](who, queue, None, None, None)
    packet, label, action, ref = out[0], out[5], out[6], out[7]
    return packet, label, action["value"] if isinstance(action, dict) else action, ref


def _events(store) -> list[str]:
    with store.read() as conn:
        return list(conn.execute(select(OutboxEvent.event_type).order_by(OutboxEvent.id)).scalars())


def test_keeping_the_label_on_re_review_keeps_the_decisions_custom_policy_ref(sqlite_store, taxonomy, cfg):
    add_scored(sqlite_store, taxonomy, [{"id": i, "label": "scam", "p": 0.9} for i in ("a1", "a2", "a3")])
    build_cases(sqlite_store, taxonomy, cfg, progress=False)
    with sqlite_store.read() as conn:
        case = dict(conn.execute(select(C.c.item_id, C.c.id)).all())
    ann = {i: DEC.decide(sqlite_store, taxonomy, case[i], "ann", "scam", policy_ref="local rule 7",
                         config=cfg)["decision_ids"][0] for i in ("a1", "a2")}
    with sqlite_store.begin() as conn:
        for i, prio in (("a1", 0.9), ("a2", 0.5)):
            conn.execute(insert(C).values(
                item_id=i, campaign_id=None, queue="label-review", state="open", priority=prio,
                priority_reason="label error?", predicted_label="scam", is_audit=False,
                meta={"label_error": {"decision_id": ann[i], "given_label": "scam", "model_label": "spam",
                                      "reviewer": "ann"}}))
    sent = len(_events(sqlite_store))
    fns = _review_tab(sqlite_store)
    default = taxonomy.policies["scam"]
    # The lead keeps ann's label and leaves the action and the reference as the screen shows them.
    packet, label, action, ref = _screen(fns, "lena", "label-review")
    assert (packet["case"]["item_id"], label, action, ref) == ("a1", "scam", default.default_action, "local rule 7")
    fns["submit"](packet, None, "lena", "label-review", label, action, ref, "right: a scam", None,
                  str(packet["case"]["id"]), None, None)
    with sqlite_store.read() as conn:
        meta = conn.execute(select(C.c.meta).where(C.c.id == packet["case"]["id"])).scalar()
    assert meta["label_error"]["outcome"] == "confirmed" and meta["label_error"]["correction_id"] is None
    record = current_labels(sqlite_store, ["a1"])["a1"]
    assert (record["id"], record["policy_ref"]) == (ann["a1"], "local rule 7")  # ann's decision stands
    assert len(_events(sqlite_store)) == sent  # nothing sent to the platform
    # A reference the lead types is a choice: a correction that carries it.
    packet, label, action, _ = _screen(fns, "lena", "label-review")
    fns["submit"](packet, None, "lena", "label-review", label, action, "local rule 9", "rule 9 applies", None,
                  str(packet["case"]["id"]), None, None)
    record = current_labels(sqlite_store, ["a2"])["a2"]
    assert (record["reviewer"], record["policy_ref"], record["supersedes_id"]) == ("lena", "local rule 9", ann["a2"])
    # An ordinary decision from the screen still records the label's own reference.
    with sqlite_store.read() as conn:
        queue = conn.execute(select(C.c.queue).where(C.c.id == case["a3"])).scalar_one()
    packet, label, action, ref = _screen(fns, "lena", queue)
    assert packet["case"]["item_id"] == "a3"
    fns["submit"](packet, None, "lena", queue, label, action, ref, "", None, str(packet["case"]["id"]), None, None)
    record = current_labels(sqlite_store, ["a3"])["a3"]
    assert (record["reviewer"], record["policy_ref"]) == ("lena", default.policy_ref)
