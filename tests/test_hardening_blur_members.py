"""A revealed campaign case blurs its other members as it blurs its own text (hover reads)."""
import re

from workbench.ui.render import text_html


def _packet(revealed: bool) -> dict:
    return {"case": {"id": 3, "queue": "hate"}, "masked": True, "revealed": revealed,
            "item": {"id": "r:1", "source": "r", "surface": "post", "text": "first member"},
            "campaign": {"id": 1, "sample": [{"text": "second member"}, {"text": "third member"}]},
            "campaign_case": {"members": 3}}


def _blurred_parts(html: str) -> list[str]:
    """The inner HTML of every element the blur rule (`.wb-blur .wb-revealed`) reaches."""
    return re.findall(r"class='[^']*wb-revealed[^']*'>(.*?)</(?:div|ul)>", html, flags=re.S)


def test_revealed_members_are_blurred_with_the_text() -> None:
    html = text_html(_packet(True), {"blur": True})
    assert "wb-blur" in html
    blurred = " ".join(_blurred_parts(html))
    assert "first member" in blurred
    assert "second member" in blurred and "third member" in blurred  # were shown sharp beside a blurred text


def test_masked_members_carry_no_revealed_class() -> None:
    html = text_html(_packet(False), {"blur": True})
    assert _blurred_parts(html) == []
