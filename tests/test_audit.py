import sqlite3

from sqlalchemy import text

from core import audit


def _events(store, n=5):
    heads = []
    for i in range(n):
        with store.begin() as conn:
            heads.append(audit.record(conn, f"analyst{i % 2}", "case.decide", "case", i, {"label": "spam", "n": i}))
    return heads


def test_intact_chain_verifies(any_store):
    heads = _events(any_store)
    with any_store.read() as conn:
        result = audit.verify(conn)
    assert result.ok and result.events == 5 and result.head == heads[-1]


def test_event_rolls_back_with_its_transaction(sqlite_store):
    try:
        with sqlite_store.begin() as conn:
            audit.record(conn, "a", "x")
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with sqlite_store.read() as conn:
        assert audit.verify(conn).events == 0


def _tamper_sqlite(store, sql):
    """Bypass the append-only triggers the way an attacker with file access would."""
    db = sqlite3.connect(store.data_dir / "workbench.db")
    db.execute("DROP TRIGGER audit_events_no_update")
    db.execute("DROP TRIGGER audit_events_no_delete")
    db.execute(sql)
    db.commit()
    db.close()


def _tamper_pg(store, sql):
    with store.begin() as conn:
        conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        conn.execute(text(sql))
        conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))


def _tamper(store, sql):
    (_tamper_sqlite if store.is_sqlite else _tamper_pg)(store, sql)


def test_edited_event_is_detected(any_store):
    _events(any_store)
    _tamper(any_store, "UPDATE audit_events SET actor = 'someone_else' WHERE id = 3")
    with any_store.read() as conn:
        result = audit.verify(conn)
    assert not result.ok
    assert any("event 3" in p and "edited" in p for p in result.problems)


def test_edited_payload_is_detected(any_store):
    _events(any_store)
    _tamper(any_store, """UPDATE audit_events SET payload = '{"label": "benign", "n": 1}' WHERE id = 2""")
    with any_store.read() as conn:
        assert not audit.verify(conn).ok


def test_deleted_event_is_detected(any_store):
    _events(any_store)
    _tamper(any_store, "DELETE FROM audit_events WHERE id = 2")
    with any_store.read() as conn:
        result = audit.verify(conn)
    assert not result.ok
    assert any("deleted" in p for p in result.problems)


def test_truncated_tail_is_detected_against_a_kept_head(sqlite_store):
    heads = _events(sqlite_store)
    _tamper(sqlite_store, "DELETE FROM audit_events WHERE id = 5")
    with sqlite_store.read() as conn:
        assert audit.verify(conn).ok  # the chain alone cannot see a cut tail...
        assert not audit.verify(conn, expect_head=heads[-1]).ok  # ...a head kept elsewhere can


def test_an_older_head_is_no_false_alarm(any_store):
    """`--expect-head` asks "is this hash still in the chain", so normal work since is fine."""
    heads = _events(any_store, 3)
    with any_store.begin() as conn:
        audit.record(conn, "ann", "case.claim", "case", 7)
    with any_store.read() as conn:
        assert audit.verify(conn, expect_head=heads[1]).ok
        assert not audit.verify(conn, expect_head="f" * 64).ok


def test_cli_head_checkpoint_and_verify_against_it(tmp_path):
    import http.server
    import json
    import threading

    from click.testing import CliRunner

    from workbench.cli import cli

    def run(*args, code=0):
        res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), *args], catch_exceptions=False)
        assert res.exit_code == code, res.output
        return res

    for n in range(2):
        (tmp_path / f"p{n}.jsonl").write_text(f'{{"text": "hello {n}"}}\n', encoding="utf-8")
    run("ingest", str(tmp_path / "p0.jsonl"))
    head = json.loads(run("audit", "head", "--json").stdout)
    assert head["count"] == 1 and len(head["head"]) == 64
    got = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.handle_request, daemon=True).start()
    cp = json.loads(run("audit", "checkpoint", "--json", "--post", f"http://127.0.0.1:{server.server_port}/").stdout)
    server.server_close()
    assert cp["count"] == 1 and cp["head"] == head["head"] and cp["posted"] == 204
    assert got == [{"head": head["head"], "count": 1, "time": cp["time"]}]
    path = tmp_path / "data" / audit.CHECKPOINT_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    run("ingest", str(tmp_path / "p1.jsonl"))  # appended after the checkpoint: still intact
    out = json.loads(run("audit", "verify", "--checkpoint", str(path), "--json").stdout)
    assert out["ok"] and out["events"] == 2 and out["checkpoints"] == 1
    run("audit", "verify", "--expect-head", head["head"])
    # Cut the chain back before the checkpoint: the chain alone links up, the checkpoint does not.
    db = sqlite3.connect(tmp_path / "data" / "workbench.db")
    db.execute("DROP TRIGGER audit_events_no_delete")
    db.execute("DELETE FROM audit_events")
    db.commit()
    db.close()
    res = run("audit", "verify", "--checkpoint", str(path), code=1)
    assert "events deleted or truncated" in res.output
    run("audit", "checkpoint", code=1)  # no checkpoint over a broken chain
    assert len(path.read_text().splitlines()) == 1


def test_cli_audit_key_file_option_keys_the_chain(tmp_path):
    """`--audit-key-file` (or WORKBENCH_AUDIT_KEY_FILE) reaches the store through the context."""
    import json as _json
    import os as _os

    from click.testing import CliRunner

    from workbench.cli import cli

    key = tmp_path / "secret" / "audit.key"
    key.parent.mkdir()
    key.write_text(_os.urandom(32).hex() + "\n")
    key.chmod(0o600)
    src = tmp_path / "posts.jsonl"
    src.write_text('{"text": "hello"}\n', encoding="utf-8")
    base = ["--data-dir", str(tmp_path / "d"), "--audit-key-file", str(key)]
    assert CliRunner().invoke(cli, [*base, "ingest", str(src)]).exit_code == 0
    ok = CliRunner().invoke(cli, [*base, "audit", "verify", "--json"])
    assert ok.exit_code == 0 and _json.loads(ok.output)["ok"]
    assert not (tmp_path / "d" / "audit.key").exists()  # the data dir's default key was never made
    other = tmp_path / "other.key"
    other.write_text(_os.urandom(32).hex() + "\n")
    other.chmod(0o600)
    wrong = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "d"), "--audit-key-file", str(other),
                                     "audit", "verify", "--json"])
    assert wrong.exit_code == 1
