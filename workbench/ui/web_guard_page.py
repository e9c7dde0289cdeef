"""What the web guard (`web_guard`) adds to the pages and answers it lets through.

- Security headers on every answer: the UI may not be framed by another page (X-Frame-Options
  and CSP frame-ancestors), so a page elsewhere cannot overlay the decide buttons (clickjacking);
  and no content-type sniffing.
- The anonymous login page without Gradio's API map: Gradio embeds its `/gradio_api/info`
  document (every endpoint, parameter, label and choice, 160 KB) in `/` even for a visitor it
  answers 401 on `/gradio_api/info` itself.
- Cross-origin reads only for `allowed_origins`: Gradio's CORS layer (outside the guard) grants
  credentialed reads to any Origin once the Host is not a localhost name, and to any localhost
  page otherwise; `limit_cors` makes it grant them to `allowed_origins` only.
- `SESSION_JS`, the page script that shows who is signed in (see `web_guard`).
"""
from __future__ import annotations

from typing import Any, Callable

SECURITY_HEADERS = ((b"x-frame-options", b"DENY"), (b"content-security-policy", b"frame-ancestors 'none'"),
                    (b"x-content-type-options", b"nosniff"))
_API_INFO = b"window.gradio_api_info = "


def with_security_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` plus the security headers it lacks (an answer's own stay as they are)."""
    have = {k.lower() for k, _ in headers}
    return list(headers) + [(k, v) for k, v in SECURITY_HEADERS if k not in have]


def hide_api_info(page: bytes) -> bytes:
    """The page with Gradio's embedded API map emptied (`{}`); unchanged when it has none.
    The map is JSON with `<` escaped, so it ends at the first `;</script>` after it."""
    start = page.find(_API_INFO)
    if start < 0:
        return page
    start += len(_API_INFO)
    end = page.find(b";</script>", start)
    return page if end < 0 else page[:start] + b"{}" + page[end:]


def limit_cors(server: Any, allowed: Callable[[str], bool]) -> bool:
    """Make Gradio's CORS layer around `server` grant an Origin only when `allowed(origin)`; the
    same-origin page needs no CORS. False when no such layer is found (nothing to limit)."""
    layer = getattr(server, "middleware_stack", None)
    for _ in range(20):  # the built stack: middleware instances, each wrapping the next in `.app`
        if layer is None:
            return False
        if hasattr(layer, "is_valid_origin") and hasattr(layer, "allow_explicit_origin"):
            layer.is_valid_origin = lambda request_headers: allowed(request_headers.get("origin") or "")
            return True
        layer = getattr(layer, "app", None)
    return False


# Shown on every page: who is signed in, a Log out button, and the idle timeout enforced in the
# browser too (a 401 from /session or from a Gradio call goes back to the login page).
SESSION_JS = """
<script>
(() => {
  const base = new URL('./', location.href);
  let bar = null;
  const back = () => location.replace(base.href);
  async function poll() {
    let r;
    try { r = await fetch(new URL('session', base), {credentials: 'same-origin', cache: 'no-store'}); }
    catch (e) { return null; }
    if (r.status === 401) { if (bar) back(); return null; }
    return r.ok ? r.json() : null;
  }
  const origFetch = window.fetch;
  window.fetch = async (...args) => {
    const r = await origFetch(...args);
    const url = String(args[0] && args[0].url ? args[0].url : args[0]);
    if (bar && r.status === 401 && url.includes('gradio_api')) back();
    return r;
  };
  async function start() {
    const s = await poll();
    if (!s || !s.user) return;
    bar = document.createElement('div');
    bar.id = 'wb-session';
    // At the top of the page, above the tabs' right end, scrolling away with it: a fixed badge
    // stayed over the side column's tables and buttons while the page scrolled.
    bar.style.cssText = 'position:absolute;top:6px;right:12px;z-index:1000;font-size:0.9em;' +
      'background:var(--background-fill-primary);padding:2px 8px;border-radius:6px;';
    const who = document.createElement('span');
    who.id = 'wb-signed-in';
    who.textContent = 'Signed in as ' + s.user + ' (' + s.role + ') ';
    bar.appendChild(who);
    if (s.via === 'sso') {
      if (s.logout) { const a = document.createElement('a'); a.id = 'wb-logout'; a.href = s.logout;
        a.textContent = 'Log out'; bar.appendChild(a); }
    } else {
      const f = document.createElement('form');
      f.method = 'post'; f.action = new URL('logout', base).href; f.style.display = 'inline';
      const b = document.createElement('button'); b.id = 'wb-logout'; b.type = 'submit'; b.textContent = 'Log out';
      b.style.cssText = 'text-decoration:underline;cursor:pointer;';
      f.appendChild(b); bar.appendChild(f);
    }
    document.body.appendChild(bar);
    const every = Math.max(1, Math.min(30, (s.idle_timeout_seconds || 120) / 4)) * 1000;
    setInterval(poll, every);
    if (s.via !== 'sso') {
      const gap = Math.max(0.5, Math.min(60, s.idle_timeout_seconds / 10)) * 1000;
      let last = 0;
      const touch = () => {
        const now = Date.now();
        if (now - last < gap) return;
        last = now;
        origFetch(new URL('session/touch', base), {method: 'POST', credentials: 'same-origin'})
          .then((r) => { if (r.status === 401) back(); }).catch(() => {});
      };
      for (const ev of ['keydown', 'pointerdown', 'wheel']) document.addEventListener(ev, touch, true);
    }
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start); else start();
})();
</script>
"""
