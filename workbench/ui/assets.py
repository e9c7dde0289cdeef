"""Assets shared by every tab: the Review tab's keyboard shortcuts, lease clock, local times, and the page CSS.

Keys on the Review tab (not while typing in a text box, except Ctrl+Enter and Esc):
1-9 pick the label, a cycles the action, o focuses the rationale (override), e escalates (focus
the reason; Ctrl+Enter sends), Ctrl+Enter saves, c confirms the model, n next, r reveal, s skip,
x release, u undo, b shows or blurs again the revealed text (blur is a well-being setting that
only a hover used to clear: no key, nothing to focus), ? the list of keys, Esc leaves the text box. On `c` the page first shows the
analyst's next case, claimed ahead and rendered (masked) by the server into a hidden box; the
server's answer then replaces that view (review.confirm). Until it does, the keys and controls
that act on a case are off (what they did would land on the case being decided). A key or click
that acts on a case (c, Ctrl+Enter, s, x) is ignored, saying so, when the case changed since the
last one and that was under GUARD_MS ago: a double Ctrl+Enter or `c` must not decide a case
nobody read, and a first press is never ignored; nor within GUARD_MS of a campaign case's "this
decides N items, press again" appearing (a double `c` decided 3 items with no time to read it). Clicking Escalate enters escalation mode.
"""
from __future__ import annotations

SHORTCUTS_JS = """
<script>
(() => {
  if (window.wbKeys) return;
  window.wbKeys = true;
  // Gradio's frontend snapshots every prop of every component that ever was an event's output,
  // twice per event (its loading status), and Svelte's snapshot calls structuredClone on each
  // primitive leaf: thousands of native calls per key (issue 17). A primitive's clone is the
  // primitive itself, so answer those here; objects, functions, and any call with options still
  // go to the browser's structuredClone (same results, same errors).
  const nativeClone = window.structuredClone;
  if (nativeClone) {
    window.structuredClone = function structuredClone(value, options) {
      if (options === undefined) {
        const t = typeof value;
        if (value === null || (t !== 'object' && t !== 'function' && t !== 'symbol')) return value;
        return nativeClone(value);
      }
      return nativeClone(value, options);
    };
  }
  window.wbLastActivity = Date.now();
  window.wbMode = 'decide';
  const GUARD_MS = 400;  // a second press this soon after the first, on a new case, was meant for the one before
  let last = {at: 0, on: null};  // the last key or click that acted on a case, and that case
  let picked = false;    // the analyst picked a label or action on this case (then `c` shows no next case early)
  let asked = 0, asking = false;  // when a campaign case's "decides N items, press again" appeared
  const askedNow = () => asked > last.at && Date.now() - asked < GUARD_MS;  // a double tap skips the count
  const tooSoon = () => (last.on !== lastCase && Date.now() - last.at < GUARD_MS) || askedNow();
  const pressed = () => { last = {at: Date.now(), on: lastCase}; };
  const $ = (sel) => document.querySelector(sel);
  const typing = (t) => t && (t.tagName === 'TEXTAREA' || t.isContentEditable ||
      (t.tagName === 'INPUT' && !['radio', 'checkbox', 'button', 'submit'].includes(t.type)));
  const click = (id) => { const el = document.getElementById(id); if (el) el.click(); return !!el; };
  const reviewShown = () => { const el = document.getElementById('wb-confirm'); return !!el && el.offsetParent !== null; };
  const radios = (id) => Array.from(document.querySelectorAll('#' + id + ' input[type=radio]'));
  const groupRadios = () => {  // one radio group: one tab stop, arrows move (native behaviour)
    for (const id of ['wb-label', 'wb-action']) radios(id).forEach((r) => { r.name = id; });
  };
  // The mode line goes above the rationale's row, not into it: a third item in that row took a
  // third of its width from the rationale box at 1366 px.
  const hint = (text) => {
    let el = document.getElementById('wb-mode');
    const box = document.getElementById('wb-rationale');
    const row = box && box.closest('.row');  // Gradio wraps the row's text boxes in a .form
    if (!el && row) { el = document.createElement('div'); el.id = 'wb-mode'; row.parentNode.insertBefore(el, row); }
    if (el) { el.textContent = text || ''; el.style.display = text ? 'block' : 'none'; }
  };
  // `b`: the revealed text of the case on screen shown sharp (or blurred again), the keyboard's
  // hover; on the text's block, whose own attributes Gradio leaves alone (it redraws what is inside:
  // the page CSS only reaches inside .gradio-container), and dropped when the case changes (onChange).
  const unblur = (on) => { const el = document.getElementById('wb-text'); if (!el) return;
    if (on) el.setAttribute('data-wb-unblur', '1'); else el.removeAttribute('data-wb-unblur'); };
  const unblurred = () => { const el = document.getElementById('wb-text'); return !!el && el.hasAttribute('data-wb-unblur'); };
  const focusRationale = () => { const t = $('#wb-rationale textarea'); if (t) t.focus(); };
  const flash = (text) => { hint(text); setTimeout(() => { const el = document.getElementById('wb-mode'); if (el && el.textContent === text) hint(''); }, 1500); };
  const IGNORED = 'Ignored: this case appeared right after your last key. Press it again to act on this case.';
  const IGNORED_ASK = 'Ignored: the count to confirm appeared right after your last key. Read it, then press again.';
  const ignored = () => flash(askedNow() ? IGNORED_ASK : IGNORED);
  // While the optimistic view is up, what acts on a case is off: the tab's case is still the one
  // being decided, and the server's answer replaces the view (and what was typed into it).
  const LOCK = ['#wb-label input', '#wb-action input', '#wb-rationale textarea', '#wb-policy-ref input',
    '#wb-buttons button:not(#wb-confirm)', '#wb-reveal', '#wb-next', '#wb-open input', '#wb-open-btn',
    '#wb-ctx-note textarea', '#wb-ctx-note-target input', '#wb-ctx-tag textarea', '#wb-ctx-tag input',
    '#wb-ctx-add-note', '#wb-ctx-add-tag', '#wb-ctx-remove-tag'].join(', ');
  const BUSY = ['1', '2', '3', '4', '5', '6', '7', '8', '9', 'a', 'o', 'e', 'r', 's', 'x', 'u', 'n', 'c'];
  let locked = false;
  const lock = (on) => {
    locked = on;
    if (!on) { document.querySelectorAll('[data-wb-locked]').forEach((el) => { el.disabled = false; el.removeAttribute('data-wb-locked'); }); return; }
    const a = document.activeElement; if (a && typing(a)) a.blur();
    document.querySelectorAll(LOCK).forEach((el) => { if (!el.disabled) { el.disabled = true; el.setAttribute('data-wb-locked', '1'); } });
  };
  const inFlight = () => !!document.querySelector('#wb-header .wb-head[data-optimistic]');
  const help = () => {
    let el = document.getElementById('wb-help');
    if (!el) {
      el = document.createElement('div'); el.id = 'wb-help'; el.setAttribute('role', 'dialog');
      el.innerHTML = '<b>Keys on the Review tab</b><table>' + [
        ['1-9', 'pick the label'], ['a', 'next enforcement action'], ['c', 'confirm the model (campaign: twice)'],
        ['o', 'override: type the rationale'], ['e', 'escalate: type the reason'],
        ['Ctrl+Enter', 'save (or send the escalation), also from the text box'], ['u', 'undo your last decision'],
        ['n', 'next case'], ['r', 'reveal the text (audited)'], ['b', 'show the revealed text sharp, or blur it again (this case)'],
        ['s', 'skip'], ['x', 'release'],
        ['Esc', 'leave the text box'], ['?', 'this list']].map(([k, v]) => '<tr><td><kbd>' + k + '</kbd></td><td>' + v +
        '</td></tr>').join('') + '</table><small>Press ? or Esc to close.</small>';
      document.body.appendChild(el);
    }
    el.style.display = el.style.display === 'block' ? 'none' : 'block';
  };
  // `c` on a plain item case shows the analyst's next case at once: the server claimed it ahead and
  // rendered it, masked like any case, into the hidden #wb-prefetch (review.fetch_ahead). The
  // server's answer to the click then replaces this view either way: the same case, fresh, or on a
  // refusal the old case back with the reason. Never for a campaign case (it asks for the count
  // first), nor in override/escalation mode, with an error showing, or twice before an answer.
  const box = (id) => document.querySelector('#' + id + " [id^='html-']");  // the HTML's own node
  const optimistic = () => {
    const pre = document.querySelector('#wb-prefetch .wb-pre');
    const head = document.querySelector('#wb-header .wb-head');
    const boxes = ['wb-header', 'wb-text', 'wb-side'].map(box);
    if (!pre || !head || !pre.getAttribute('data-head') || boxes.some((b) => !b)) return false;
    if (head.getAttribute('data-kind') !== 'item' || pre.getAttribute('data-kind') !== 'item') return false;
    if (head.hasAttribute('data-optimistic') || pre.getAttribute('data-case') === head.getAttribute('data-case')) return false;
    if (window.wbMode !== 'decide' || document.querySelector('.wb-err .wb-msg, #wb-lease.wb-lost')) return false;
    if (picked) return false;  // the server may refuse `c` for the analyst's pick: no next case shown early
    const from = head.getAttribute('data-case');
    boxes[0].innerHTML = pre.getAttribute('data-head');
    const shown = boxes[0].querySelector('.wb-head');
    shown.setAttribute('data-optimistic', '1');
    shown.setAttribute('data-from', from);  // `c`'s own click still speaks for this case (review_actions.page_case_js)
    boxes[1].innerHTML = pre.getAttribute('data-text');
    boxes[2].innerHTML = pre.getAttribute('data-side');
    lock(true);
    return true;
  };
  // The click right after the swapped view's frame: Gradio's own work before the request (~6 ms of
  // script) would otherwise hold that frame back. A timer too, where no frame comes (hidden page).
  const afterPaint = (fn) => {
    let done = false;
    const once = () => { if (!done) { done = true; fn(); } };
    requestAnimationFrame(() => setTimeout(once, 0));
    setTimeout(once, 100);
  };
  const activity = () => { window.wbLastActivity = Date.now(); };
  document.addEventListener('mousedown', activity, true);
  document.addEventListener('change', (e) => {
    if (e.target && e.target.closest && e.target.closest('#wb-label, #wb-action')) picked = true;
  }, true);
  // A click on a button that acts on the case: not right after a new case appeared; Escalate
  // also enters escalation mode (then Ctrl+Enter sends the reason typed in the box).
  document.addEventListener('click', (e) => {
    const b = e.target && e.target.closest && e.target.closest('#wb-confirm, #wb-decide, #wb-escalate, #wb-skip, #wb-release');
    if (!b) return;
    if (e.isTrusted && tooSoon()) { e.preventDefault(); e.stopImmediatePropagation(); ignored(); return; }
    if (e.isTrusted) pressed();  // a key's own click (not trusted) was counted at the key
    if (b.id === 'wb-escalate') {
      window.wbMode = 'escalate';
      hint('Escalating: type the reason, then Ctrl+Enter (or Escalate) to send (Esc cancels).');
      const box = $('#wb-rationale textarea');
      if (box && !box.value.trim()) setTimeout(() => box.focus(), 0);
    }
  }, true);
  document.addEventListener('keydown', (e) => {
    activity();
    const t = e.target;
    if (!reviewShown()) return;
    const save = e.key === 'Enter' && (e.ctrlKey || e.metaKey);
    const plainKey = !(e.ctrlKey || e.metaKey || e.altKey || typing(t));
    if (inFlight() && (save || (plainKey && BUSY.includes(e.key)))) { e.preventDefault(); e.stopPropagation(); return; }
    if (save || (plainKey && ['c', 's', 'x'].includes(e.key))) {
      if (tooSoon()) { e.preventDefault(); e.stopPropagation(); ignored(); return; }
      pressed();
    }
    if (save) {
      e.preventDefault(); e.stopPropagation();
      if (t && t.blur && typing(t)) t.dispatchEvent(new Event('input', {bubbles: true}));
      const on = lastCase;  // the click goes only to the case the key was pressed on
      setTimeout(() => { if (lastCase === on && !inFlight()) click(window.wbMode === 'escalate' ? 'wb-escalate' : 'wb-decide'); }, 60);
      return;
    }
    if (e.key === 'Escape') {
      const h = document.getElementById('wb-help'); if (h) h.style.display = 'none';
      if (typing(t)) t.blur();
      window.wbMode = 'decide'; hint('');
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || typing(t)) return;
    const k = e.key;
    if (/^[1-9]$/.test(k)) {
      const r = radios('wb-label')[Number(k) - 1];
      if (r) { e.preventDefault(); r.click(); r.focus(); }
      return;
    }
    if (k === 'a') {
      const rs = radios('wb-action'); if (!rs.length) return;
      const i = rs.findIndex((r) => r.checked);
      const next = rs[(i + 1) % rs.length]; e.preventDefault(); next.click();
      return;
    }
    if (k === 'o') { e.preventDefault(); window.wbMode = 'decide'; hint('Override: type why, then Ctrl+Enter to save.'); focusRationale(); return; }
    if (k === 'e') { e.preventDefault(); window.wbMode = 'escalate'; hint('Escalating: type the reason, then Ctrl+Enter to send (Esc cancels).'); focusRationale(); return; }
    if (k === '?') { e.preventDefault(); help(); return; }
    if (k === 'b') { e.preventDefault(); unblur(!unblurred()); return; }
    if (k === 'c' && optimistic()) { e.preventDefault(); afterPaint(() => click('wb-confirm')); return; }
    const ids = {c: 'wb-confirm', n: 'wb-next', r: 'wb-reveal', s: 'wb-skip', x: 'wb-release', u: 'wb-undo'};
    if (ids[k]) { e.preventDefault(); click(ids[k]); }
  }, true);
  const pad = (n) => String(n).padStart(2, '0');
  const localTimes = () => document.querySelectorAll('time.wb-t:not([data-local])').forEach((el) => {
    const d = new Date(el.getAttribute('datetime'));
    if (isNaN(d)) return;
    el.textContent = d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' + pad(d.getHours()) + ':' + pad(d.getMinutes());
    el.setAttribute('data-local', '1'); el.title = el.getAttribute('datetime');
  });
  // Sections (<details data-acc>) of HTML made anew for each case keep the analyst's open/closed choice.
  const opened = {};
  document.addEventListener('toggle', (e) => {
    const d = e.target; const k = d && d.getAttribute && d.getAttribute('data-acc');
    if (k && d.getAttribute('data-seen')) opened[k] = d.open;
  }, true);
  const keepSections = () => document.querySelectorAll('details[data-acc]:not([data-seen])').forEach((d) => {
    const k = d.getAttribute('data-acc');
    if (k in opened) d.open = opened[k];
    d.setAttribute('data-seen', '1');
  });
  let lastCase = null;
  const onChange = () => {
    groupRadios(); localTimes(); keepSections();
    const ask = !!document.querySelector('#wb-buttons-err .wb-confirm');
    if (ask && !asking) asked = Date.now();
    asking = ask;
    const lease = document.getElementById('wb-lease');
    if (lease && lease.getAttribute('data-expires') && (!lease.querySelector('.wb-clock') || leaseKey(lease) !== leaseGot.key)) clockTick();
    const head = document.querySelector('#wb-header .wb-head');
    // an optimistic view is not yet the case on screen: the boxes are emptied when the server's is
    const id = !head ? null : head.hasAttribute('data-optimistic') ? lastCase : head.getAttribute('data-case');
    if (locked && head && !head.hasAttribute('data-optimistic')) lock(false);  // the server's answer is in
    if (id !== lastCase) {  // a new case: back to the top, out of any text box, mode reset
      lastCase = id; window.wbMode = 'decide'; hint(''); picked = false; unblur(false);
      window.scrollTo(0, 0);
      const a = document.activeElement; if (a && typing(a)) a.blur();
      // the rationale and the note and tag boxes start empty for each case (the page empties them:
      // as outputs of every key they cost the page on every event; issue 17)
      for (const sel of ['#wb-rationale textarea', '#wb-ctx-note textarea', '#wb-ctx-tag textarea', '#wb-ctx-tag input']) {
        const box = $(sel);
        if (box && box.value) { box.value = ''; box.dispatchEvent(new Event('input', {bubbles: true})); }
      }
    }
  };
  // characterData and data-local too: Gradio's HTML updates morph the old nodes in place, which
  // puts a <time>'s server text back (and drops data-local, a section's data-seen) without adding
  // or removing a node.
  new MutationObserver(onChange).observe(document.documentElement, {childList: true, subtree: true,
    characterData: true, attributes: true, attributeFilter: ['data-local', 'data-seen', 'data-left']});
  const fmt = (s) => Math.floor(s / 60) + ':' + pad(Math.floor(s % 60));
  // The lease clock counts down the seconds left as the server saw them (data-left) from when this
  // page received them, never against this computer's clock, which may be minutes off (a fast one
  // showed a live hold as lost, a slow one a lapsed hold as live). Time since arrival is the larger
  // of performance.now()'s (monotonic) and Date.now()'s (which goes on through a laptop's sleep):
  // a clock set right or wrong mid-count errs toward less time left, never a lapsed hold shown live.
  const leaseKey = (el) => [el.getAttribute('data-left'), el.getAttribute('data-expires'),
    el.getAttribute('data-case'), el.getAttribute('data-idle')].join('|');
  let leaseGot = {key: null, left: 0, at: 0, wall: 0};
  const clockTick = () => {  // the lease clock
    const el = document.getElementById('wb-lease'); if (!el) return;
    const exp = Number(el.getAttribute('data-expires') || 0), sent = el.getAttribute('data-left') || '';
    if (!exp || !sent) return;
    const key = leaseKey(el);
    if (key !== leaseGot.key) leaseGot = {key, left: Number(sent), at: performance.now(), wall: Date.now()};
    const since = Math.max(performance.now() - leaseGot.at, Date.now() - leaseGot.wall, 0) / 1000;
    const left = leaseGot.left - since, warn = Number(el.getAttribute('data-warn') || 0);
    let clock = el.querySelector('.wb-clock');
    if (!clock) { clock = document.createElement('span'); clock.className = 'wb-clock'; el.appendChild(clock); }
    if (left <= 0) { el.className = 'wb-lease wb-lost'; clock.textContent = ': the hold lapsed; the case may be back in the queue.'; }
    else if (left <= warn) {
      el.className = 'wb-lease wb-warn';
      clock.textContent = ': ends in ' + fmt(left) + (el.getAttribute('data-idle') === '1' ? '' : ' (it renews while you work)');
    }
    else { el.className = 'wb-lease'; clock.textContent = ': ' + fmt(left) + ' left'; }
  };
  setInterval(clockTick, 1000);
})();
</script>
"""

CSS = """
#wb-prefetch {display: none !important;}
.gradio-container {max-width: 1366px !important; padding-top: 4px !important;}
#wb-topbar {gap: 8px; align-items: end;}
#wb-text {font-size: 1.1em; line-height: 1.4; padding: 0.4em 0.7em; border-radius: 6px; max-height: 8em;
          overflow-y: auto; background: var(--background-fill-secondary);}
#wb-text .wb-masked {color: var(--body-text-color-subdued); font-family: monospace;}
#wb-text .wb-blur .wb-revealed {filter: blur(5px); transition: filter 0.15s;}
#wb-text .wb-blur .wb-revealed:hover, #wb-text .wb-blur:focus .wb-revealed, #wb-text .wb-blur:focus-within .wb-revealed,
#wb-text[data-wb-unblur] .wb-blur .wb-revealed {filter: none;}
#wb-text .wb-blur:focus-visible {outline: 2px solid var(--color-accent); outline-offset: 2px;}
#wb-text .wb-gray {filter: grayscale(1);}
#wb-text .wb-sample ul {margin: 0.2em 0 0 1.2em; font-size: 0.9em;}
.wb-head {font-size: 0.95em; line-height: 1.35;}
.wb-case-title {font-weight: 600; font-size: 1.1em;}
.wb-campaign {margin: 2px 0; padding: 3px 8px; border-left: 4px solid #d97706; background: rgba(217,119,6,0.08);}
.wb-relabel {margin: 2px 0; padding: 3px 8px; border-left: 4px solid #7c3aed; background: rgba(124,58,237,0.08);}
.wb-why {color: var(--body-text-color-subdued); font-size: 0.88em; white-space: nowrap; overflow: hidden;
         text-overflow: ellipsis;}
.wb-overdue {color: #b91c1c;}
.wb-msg {margin-top: 3px; padding: 3px 8px; border-radius: 4px;}
.wb-info {background: rgba(22,163,74,0.10);}
.wb-error {background: rgba(220,38,38,0.12); color: #991b1b; font-weight: 500;}
.wb-confirm {background: rgba(217,119,6,0.15); color: #92400e; font-weight: 600;}
.wb-lease {font-size: 0.88em;}
.wb-lease.wb-warn {color: #92400e; font-weight: 600; background: rgba(217,119,6,0.15); padding: 1px 4px;}
.wb-lease.wb-lost {color: #991b1b; font-weight: 600; background: rgba(220,38,38,0.12); padding: 1px 4px;}
.wb-status {font-size: 0.88em;}
.wb-over {color: #991b1b; font-weight: 600;}
#wb-mode {display: none; font-size: 0.88em; color: #92400e; font-weight: 600; padding: 0 10px;}
.wb-model {font-size: 0.92em;}
.wb-bar {display: grid; grid-template-columns: 6.5em 1fr 2.6em; align-items: center; gap: 4px; font-size: 0.85em;}
.wb-bar i {display: block; height: 0.6em; background: var(--color-accent); border-radius: 2px;}
.wb-table {table-layout: fixed; width: 100%; border-collapse: collapse; font-size: 0.82em;}
.wb-table th, .wb-table td {padding: 2px 4px; border-bottom: 1px solid var(--border-color-primary);
                             overflow-wrap: anywhere; vertical-align: top; text-align: left;}
.wb-table .wb-nobreak, #wb-similar .wb-table th {overflow-wrap: normal; word-break: normal; hyphens: none;}
.wb-table .wb-nobreak {display: inline-block; max-width: 100%; overflow: hidden; vertical-align: top;}
.wb-count, .wb-sub, .wb-empty {font-size: 0.82em; color: var(--body-text-color-subdued);}
.wb-keys {font-size: 0.8em; color: var(--body-text-color-subdued);}
.wb-keys kbd, #wb-help kbd {border: 1px solid #999; border-radius: 3px; padding: 0 4px; font-size: 0.85em;}
#wb-help {display: none; position: fixed; top: 60px; right: 24px; z-index: 1000; padding: 12px 16px;
          background: var(--background-fill-primary); border: 1px solid #999; border-radius: 8px;
          box-shadow: 0 4px 16px rgba(0,0,0,0.25); font-size: 0.9em;}
#wb-help td {padding: 1px 8px 1px 0;}
#wb-label .wrap, #wb-action .wrap {gap: 4px 6px;}
#wb-label label, #wb-action label {padding: 2px 7px !important; font-size: 0.92em;}
#wb-buttons button {padding: 4px 6px;}
.wb-err:not(:has(.wb-msg)) {display: none !important;}
.wb-title {font-size: 1.05em; font-weight: 600; margin: 0;}
#wb-topbar .block, #wb-topbar label {padding-top: 2px !important; padding-bottom: 2px !important;}
#wb-topbar input {padding-top: 4px !important; padding-bottom: 4px !important;}
#wb-status-box, #wb-lease-box {min-height: 0 !important;}
.gradio-container > .main > .wrap, .gradio-container .contain {padding-top: 0 !important;}
#wb-display {align-items: center;}
.gradio-container .column {gap: 6px !important;}
.tabitem {padding-top: 2px !important;}
#wb-label, #wb-action {padding: 4px 10px !important;}
#wb-label > span, #wb-action > span {margin-bottom: 2px !important;}
#wb-rationale, #wb-policy-ref {padding: 4px 10px !important;}
#wb-buttons {gap: 6px !important;}
#wb-buttons button {min-height: 34px; font-size: 0.95em;}
.wb-ctx-table {max-height: 300px; overflow-y: auto;}
details.wb-acc {margin: 4px 0; border: 1px solid var(--border-color-primary); border-radius: 6px; padding: 2px 8px;}
details.wb-acc > summary {cursor: pointer; font-weight: 500; padding: 2px 0;}
.wb-ctx p, .wb-notes ul {margin: 0.25em 0;}
.wb-ctx ul, .wb-notes ul {padding-left: 1.2em;}
.wb-ctx, .wb-notes {font-size: 0.9em;}
"""
