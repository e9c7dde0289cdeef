"""The web UI's front door against a real server (`serve(..., block=False)`), raw HTTP:

- the anonymous login page carried Gradio's whole API map (every endpoint, parameter label and
  choice: 164 KB) while `/gradio_api/info` itself answered 401;
- no answer forbade framing, so a page on another origin of the same site could frame the
  signed-in UI and overlay its decide buttons (clickjacking);
- Gradio's CORS layer granted credentialed cross-origin reads to any Origin (Host not a localhost
  name) or any localhost page: another origin read who is signed in, with which role.
"""
from __future__ import annotations

import json
import re

from test_web_session import served  # noqa: F401  (the fixture: a server over a store with users)

MAP = re.compile(rb"window\.gradio_api_info = (.*?);</script>", re.S)


def _api_map(body: bytes) -> dict:
    found = MAP.search(body)
    assert found is not None, body[:300]
    return json.loads(found.group(1))


def test_the_anonymous_login_page_carries_no_api_map(served):
    srv = served()
    status, _, body = srv.req("GET", "/")
    assert status == 200
    assert _api_map(body) == {}
    assert b"on_note" not in body and b"named_endpoints" not in body
    assert srv.req("GET", "/gradio_api/info")[0] == 401
    jar = srv.sign_in("ann", "ann-pass-123")
    status, hdrs, body = srv.req("GET", "/", headers={"Cookie": jar})
    assert status == 200 and "/on_note" in _api_map(body)["named_endpoints"]  # signed in: the page is whole
    assert int(hdrs["content-length"][0]) == len(body)


def test_no_answer_may_be_framed_by_another_page(served):
    srv = served()
    jar = srv.sign_in("lee", "lee-pass-123")
    answers = {"login page": srv.req("GET", "/"), "signed-in page": srv.req("GET", "/", headers={"Cookie": jar}),
               "config": srv.req("GET", "/config", headers={"Cookie": jar}),
               "session": srv.req("GET", "/session", headers={"Cookie": jar}),
               "refused": srv.req("POST", "/gradio_api/reset", "{}", {"Origin": "https://evil.example.org"})}
    for what, (status, hdrs, _) in answers.items():
        assert hdrs.get("x-frame-options") == ["DENY"], (what, status, hdrs)
        assert hdrs.get("content-security-policy") == ["frame-ancestors 'none'"], (what, status)
        assert hdrs.get("x-content-type-options") == ["nosniff"], (what, status)


def test_cross_origin_reads_only_for_allowed_origins(served):
    srv = served("allowed_origins: [https://ok.example.org]\n")
    jar = srv.sign_in("ann", "ann-pass-123")
    for host, origin, granted in [("workbench.example.org", "https://evil.example.org", False),
                                  (f"127.0.0.1:{srv.port}", "http://localhost:3000", False),
                                  ("workbench.example.org", "https://ok.example.org", True)]:
        status, hdrs, body = srv.req("GET", "/session", headers={"Cookie": jar, "Host": host, "Origin": origin})
        assert status == 200 and json.loads(body)["user"] == "ann"
        assert hdrs.get("access-control-allow-origin") == ([origin] if granted else None), (host, origin, hdrs)
        status, hdrs, _ = srv.req("OPTIONS", "/gradio_api/queue/join",
                                  headers={"Host": host, "Origin": origin, "Access-Control-Request-Method": "POST"})
        assert hdrs.get("access-control-allow-origin") == ([origin] if granted else None), ("preflight", origin)
    # the server's own page needs no CORS and still works
    status, _, _ = srv.req("GET", "/config", headers={"Cookie": jar, "Origin": srv.origin})
    assert status == 200


def _root(body: bytes) -> str:
    return json.loads(re.search(rb"window\.gradio_config = (.*?);</script>", body, re.S).group(1))["root"]


def test_the_login_page_root_is_not_taken_from_an_untrusted_client(served):
    """Gradio's login form posts the password to the page's root URL, which it built from any
    client's X-Forwarded-Host / X-Gradio-Server: a cached login page sent passwords elsewhere."""
    srv = served()
    for header in ({"X-Forwarded-Host": "evil.example"}, {"X-Gradio-Server": "http://evil.example"},
                   {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}):
        status, hdrs, body = srv.req("GET", "/", headers=header)
        assert status == 200 and _root(body) == srv.origin, header
        assert hdrs.get("cache-control") == ["no-store"]
    # from a trusted proxy, its X-Forwarded-Host / -Proto still name the public address
    proxied = served("trusted_proxies: [127.0.0.1/32]\n")
    status, _, body = proxied.req("GET", "/", headers={"X-Forwarded-Host": "workbench.example.org",
                                                       "X-Forwarded-Proto": "https"})
    assert status == 200 and _root(body) == "https://workbench.example.org"
    status, _, body = proxied.req("GET", "/", headers={"X-Gradio-Server": "http://evil.example"})
    assert _root(body) == proxied.origin


def test_a_second_cookie_of_our_name_is_no_session(served):
    """With `Cookie: <valid>; wb_session_P=junk` the request was refused but `junk; <valid>` was
    let in: whichever came last won, so a cookie planted by a sibling subdomain or a plain-http
    neighbour chose the victim's session. A name sent twice now reads as no session either way."""
    srv = served()
    good = srv.sign_in("ann", "ann-pass-123")
    assert srv.user(good) == "ann"
    planted = f"{srv.cookie_name}=junk"
    for cookie in (f"{good}; {planted}", f"{planted}; {good}"):
        assert srv.user(cookie) is None, cookie
        assert srv.req("GET", "/session", headers={"Cookie": cookie})[0] == 401, cookie
