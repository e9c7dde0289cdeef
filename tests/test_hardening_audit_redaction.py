"""Audit redaction: secret values that older versions wrote into audit payloads (the argon2 hash
of `user.set_password`'s `was.password_hash`, token hashes) are removed from the store, verifiably:
the chain, its checkpoints and every other tampering check still hold, the redaction is itself
a keyed event (which event, which field, when, by whom), and no new event may carry a secret.
On SQLite and on the real PostgreSQL."""
from __future__ import annotations

import datetime as dt
import hmac
import json
import sqlite3

import pytest
from sqlalchemy import Text, cast, insert, select
from sqlalchemy.exc import DBAPIError

from core import accounts, audit
from core.config import config_dir
from core.permissions import load_roles
from core.schema import AuditEvent
from core.store import Store

from test_audit_hardening import _plain_hash, _sql, _verify
from test_tamper import _sql as _raw_sql

E = AuditEvent.__table__
ROLES = load_roles(config_dir())
ARGON = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA"
TOKEN_HASH = "9f2c" * 16


def _old_event(store: Store, action: str, payload: dict, actor: str = "ada", entity=("user", "ada")) -> int:
    """What `record` of an older version wrote: the payload as given, secret included, keyed."""
    with store.begin() as conn:
        akey = audit.connection_key(conn)
        digest = audit._insert(conn, akey.get(conn), audit._chain_head(conn, akey), actor, action, *entity, payload)
        return int(conn.execute(select(E.c.id).where(E.c.hash == digest)).scalar_one())


def _stored_text(store: Store) -> str:
    """Every payload as the database holds it (what anyone allowed to read the log reads)."""
    with store.read() as conn:
        return "\n".join(str(t) for t in conn.execute(select(cast(E.c.payload, Text))).scalars())


def _payload(store: Store, eid: int) -> dict:
    with store.read() as conn:
        return conn.execute(select(E.c.payload).where(E.c.id == eid)).scalar_one()


def _redactions(store: Store) -> list:
    with store.read() as conn:
        return conn.execute(select(E).where(E.c.action == audit.REDACT_ACTION).order_by(E.c.id)).mappings().all()


def _seed(store: Store) -> tuple[int, int, dict]:
    """An account, an old set_password event holding its argon2 hash, an old event holding token
    hashes in a list, and ordinary events after them; returns the two ids and a checkpoint."""
    accounts.add_user(store, "ada", "admin", actor="setup", roles=ROLES, password="first-pass-1")
    pw = _old_event(store, "user.set_password", {"was": {"password_hash": ARGON, "failed_logins": 0,
                                                          "locked_until": None}})
    tok = _old_event(store, "user.disable", {"revoked": [{"id": 1, "Token_Hash": TOKEN_HASH, "prefix": "wbt_abc"}]})
    accounts.set_role(store, "ada", "admin", actor="ada", roles=ROLES)
    with store.read() as conn:
        cp = audit.head(conn)
    assert ARGON in _stored_text(store) and TOKEN_HASH in _stored_text(store)  # the defect, reproduced
    return pw, tok, cp


def test_migrate_redacts_old_secrets_and_the_chain_still_verifies(any_store):
    pw, tok, cp = _seed(any_store)
    assert _verify(any_store).ok
    any_store.migrate()  # what `workbench init` / an upgrade runs, as the owner
    text = _stored_text(any_store)
    assert ARGON not in text and "argon2" not in text and TOKEN_HASH not in text
    assert _payload(any_store, pw)["was"] == {"password_hash": audit.REDACTED, "failed_logins": 0,
                                              "locked_until": None}
    assert _payload(any_store, tok)["revoked"][0] == {"id": 1, "Token_Hash": audit.REDACTED, "prefix": "wbt_abc"}
    result = _verify(any_store, checkpoints=[cp], expect_head=cp["head"])
    assert result.ok, result.problems
    assert result.redacted_events == 2 and result.checkpoints == 1
    # each redaction is recorded: which event, which field, when, by whom, and what was removed
    reds = _redactions(any_store)
    assert [(r["entity_type"], r["entity_id"], r["actor"]) for r in reds] == \
        [("audit_event", str(pw), "system"), ("audit_event", str(tok), "system")]
    field = reds[0]["payload"]["fields"][0]
    assert field["path"] == ["was", "password_hash"] and isinstance(reds[0]["ts"], dt.datetime)
    key = any_store.audit_key.get()
    assert field["hmac"] == hmac.new(key, b"workbench audit redaction\0" + json.dumps(ARGON).encode(),
                                     "sha256").hexdigest()  # the key holder can prove what was removed
    assert reds[1]["payload"]["fields"][0]["path"] == ["revoked", 0, "Token_Hash"]
    # a second run finds nothing more, writes nothing
    any_store.migrate()
    with any_store.begin() as conn:
        assert audit.redact(conn, "ada") == {"redacted": [], "refused": []}
    assert len(_redactions(any_store)) == 2 and _verify(any_store).ok


def test_explicit_redaction_is_recorded_under_its_actor(any_store):
    pw, _, _ = _seed(any_store)
    with any_store.read() as conn:
        planned = audit.redact(conn, "ada", dry_run=True)
    assert [(r["event"], r["fields"]) for r in planned["redacted"]][0] == (pw, ["was.password_hash"])
    assert ARGON in _stored_text(any_store)  # a dry run changes nothing
    with any_store.begin() as conn:
        done = audit.redact(conn, "ada", reason="incident 42")
    assert done == planned
    assert {(r["actor"], r["payload"]["reason"]) for r in _redactions(any_store)} == {("ada", "incident 42")}
    assert ARGON not in _stored_text(any_store) and _verify(any_store).ok


def test_verify_still_finds_every_other_edit(any_store):
    pw, tok, _ = _seed(any_store)
    any_store.migrate()
    red = _redactions(any_store)[0]
    was = {"password_hash": audit.REDACTED, "failed_logins": 0, "locked_until": None}
    left = f"event {pw}: contents are not what redaction event {red['id']} left"
    # another field of a redacted event
    _sql(any_store, f"""UPDATE audit_events SET payload = '{json.dumps({"was": dict(was, failed_logins=5)})}'
                        WHERE id = {pw}""")
    assert any(left in p for p in _verify(any_store).problems)
    # the original secret put back: authentic contents, but not what the redaction left
    _sql(any_store, f"""UPDATE audit_events SET payload = '{json.dumps({"was": dict(was, password_hash=ARGON)})}'
                        WHERE id = {pw}""")
    assert any(left in p for p in _verify(any_store).problems)
    _sql(any_store, f"""UPDATE audit_events SET payload = '{json.dumps({"was": was})}' WHERE id = {pw}""")
    assert _verify(any_store).ok
    # REDACTED written into an event with no recorded redaction is an edit like any other
    _sql(any_store, f"""UPDATE audit_events SET payload = '{json.dumps({"role": audit.REDACTED, "password": True})}'
                        WHERE action = 'user.add'""")
    assert any("contents do not match its keyed hash" in p and "user.add" in p for p in _verify(any_store).problems)
    # the redaction event itself edited (another actor): it no longer vouches, and is reported
    _sql(any_store, f"UPDATE audit_events SET actor = 'mallory' WHERE id = {red['id']}")
    problems = "\n".join(_verify(any_store).problems)
    assert f"event {red['id']}: contents do not match" in problems and f"event {pw}: contents do not match" in problems


def test_an_edited_event_is_not_laundered_by_redaction(any_store):
    """An event whose contents no longer match its hash is refused: a redaction would vouch for it."""
    pw, _, _ = _seed(any_store)
    _sql(any_store, f"""UPDATE audit_events SET payload = '{json.dumps({"was": {"password_hash": ARGON,
                        "failed_logins": 9, "locked_until": None}})}' WHERE id = {pw}""")
    with any_store.begin() as conn:
        out = audit.redact(conn, "ada")
    assert [r["event"] for r in out["refused"]] == [pw] and len(out["redacted"]) == 1
    assert str(pw) not in [r["entity_id"] for r in _redactions(any_store)]
    assert ARGON in _stored_text(any_store)  # left as it is, for the investigation
    assert any(f"event {pw}: contents do not match" in p for p in _verify(any_store).problems)


def test_the_database_allows_no_other_update(any_store):
    """Migration 0011: only a payload, only right after its own recorded redaction."""
    pw, _, _ = _seed(any_store)
    errors = (sqlite3.DatabaseError, DBAPIError)
    with pytest.raises(errors, match="append-only"):
        _raw_sql(any_store, f"""UPDATE audit_events SET payload = '{{"was": {{}}}}' WHERE id = {pw}""")
    any_store.migrate()
    red = _redactions(any_store)[-1]
    target = int(red["entity_id"])
    with pytest.raises(errors, match="append-only"):  # right after its redaction, only the payload may change
        _raw_sql(any_store, f"UPDATE audit_events SET actor = 'x' WHERE id = {target}")
    with any_store.begin() as conn:
        audit.record(conn, "ada", "case.claim", "case", 1)
    with pytest.raises(errors, match="append-only"):  # no longer right after it
        _raw_sql(any_store, f"""UPDATE audit_events SET payload = '{{"x": 1}}' WHERE id = {target}""")
    assert _verify(any_store).ok


def test_record_refuses_a_secret_value(any_store):
    with any_store.begin() as conn:
        audit.record(conn, "ada", "user.set_password", "user", "ada", {"was": {"password": True}})
        with pytest.raises(audit.AuditError, match=r"user.set_password: payload field was\.password_hash holds"):
            audit.record(conn, "ada", "user.set_password", "user", "ada", {"was": {"password_hash": ARGON}})
        with pytest.raises(audit.AuditError, match=r"payload field tokens\.0\.token holds"):
            audit.record(conn, "ada", "x", payload={"tokens": [{"token": "wbt_" + "a" * 43}]})
    assert ARGON not in _stored_text(any_store) and _verify(any_store).ok
    accounts.add_user(any_store, "ada", "admin", actor="setup", roles=ROLES, password="first-pass-1")
    accounts.set_password(any_store, "ada", "second-pass-2", actor="ada")  # the current code passes
    assert "argon2" not in _stored_text(any_store)


def test_an_old_unkeyed_chain_is_sealed_then_redacted(any_store):
    """A store from before the key: the seal comes first, the redaction chains onto it."""
    with any_store.engine.begin() as conn:
        prev = audit.GENESIS
        t0 = dt.datetime(2026, 1, 1)
        for i, (action, payload) in enumerate([("user.add", {"role": "admin", "password": True}),
                                               ("user.set_password", {"was": {"password_hash": ARGON}}),
                                               ("case.claim", {"n": 1})]):
            r = dict(ts=t0 + dt.timedelta(seconds=i), actor="old", action=action, entity_type="user",
                     entity_id="ada", payload=payload, prev_hash=prev)
            r["hash"] = _plain_hash(prev, r)
            conn.execute(insert(E).values(**r))
            prev = r["hash"]
    any_store.migrate()
    with any_store.read() as conn:
        actions = conn.execute(select(E.c.action).order_by(E.c.id)).scalars().all()
    assert actions[3:] == [audit.SEAL_ACTION, audit.REDACT_ACTION]
    assert ARGON not in _stored_text(any_store)
    result = _verify(any_store)
    assert result.ok, result.problems
    assert (result.legacy_events, result.keyed_events, result.redacted_events) == (3, 2, 1)
