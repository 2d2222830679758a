"""Overview with categories but no items: the count reads as English ("1 category", not "1 categories")."""

from __future__ import annotations

from tests.test_pages import shown
from tests.test_pages_empty import _page, _ws, empty_env  # noqa: F401  (fixture)


def test_one_category_and_no_items_reads_one_category(empty_env):  # noqa: F811
    _ws().add_category("Garden Tools", "Spades, rakes and hoses", "")
    at = _page("pages/overview.py")
    assert not at.exception, at.exception
    captions = [shown(c.value) for c in at.caption]
    assert "1 category, no items yet." in captions, captions
