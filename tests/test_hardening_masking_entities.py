"""The one masking rule hides what a page shows: every tab decodes HTML entities twice before
display (`workbench.ui.format.decoded`), and `mask_text` read the raw text, in which
`&#118;&#105;&#108;&#101;` has no letters to hide: a masked case showed "vile"."""
from __future__ import annotations

import pytest

from labeling.masking import mask_text
from workbench.ui.format import readable


@pytest.mark.parametrize("raw", [
    "you &#118;&#105;&#108;&#101; people",              # numeric entities
    "you &amp;#118;&amp;#105;&amp;#108;&amp;#101; people",  # entities of entities
    "you &amp;amp;#118;&amp;amp;#105;&amp;amp;#108;&amp;amp;#101; people",  # three deep: still hidden
    "you &#x76;&#x69;&#x6C;&#x65; people",
])
def test_an_entity_encoded_word_is_masked_as_the_page_shows_it(raw):
    shown = readable(mask_text(raw))
    assert "vile" not in shown.casefold() and "ile" not in shown
    assert shown.startswith("y•• ") and shown.endswith(" p•••••")


def test_plain_text_keeps_its_shape_and_ampersands_stay_visible():
    assert mask_text("win £900 now") == "w•• £900 n••"
    assert readable(mask_text("Tom & Jerry &amp; co")) == "T•• ＆ J•••• ＆ c•"
