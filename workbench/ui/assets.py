"""Assets shared by every tab: the keyboard shortcuts of the Review tab and the page CSS."""
from __future__ import annotations

# Keys on the Review tab when no text box has focus: c confirm, n next, r reveal, s skip, x release.
SHORTCUTS_JS = """
<script>
document.addEventListener('keydown', (e) => {
  const t = e.target;
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (t && (t.tagName === 'TEXTAREA' || t.tagName === 'INPUT' || t.isContentEditable)) return;
  const ids = {c: 'wb-confirm', n: 'wb-next', r: 'wb-reveal', s: 'wb-skip', x: 'wb-release'};
  const el = document.getElementById(ids[e.key]);
  if (el) { e.preventDefault(); el.click(); }
});
</script>
"""

CSS = """
#wb-text {font-size: 1.15em; line-height: 1.5; padding: 0.6em; border-radius: 6px;
          background: var(--background-fill-secondary);}
.wb-masked {color: var(--body-text-color-subdued); font-family: monospace;}
.wb-keys kbd {border: 1px solid #999; border-radius: 3px; padding: 0 4px; font-size: 0.85em;}
"""
