"""The UI's Textual-free data layer: filters → SQL, pages, review navigation, stats helpers."""

from __future__ import annotations

from microvqa_tui.services.insights import histogram
from microvqa_tui.services.query import fetch_page, neighbour_key, position_of
from microvqa_tui.services.views import VIEWS, Filter, Sort, build_where
from tests.ui_helpers import mcq_row


def test_build_where_quotes_values_and_skips_filters_a_view_lacks():
    mcqs, figures = VIEWS["mcqs"], VIEWS["figures"]
    flt = Filter(
        status="kept",
        tier="hard",
        bloom=3,
        task="it's",
        range_column="pass_rate",
        range_min=0.5,
        text="O'Brien",
    )
    where = build_where(mcqs, flt)
    assert "task_str = 'it''s'" in where and "bloom_level = 3" in where
    assert "pass_rate >= 0.5" in where and "strpos(lower(question), 'o''brien') > 0" in where
    assert build_where(figures, Filter(status="kept", tier="hard")) is None
    assert build_where(mcqs, Filter()) is None
    assert Filter(status="kept", bloom=2).describe() == "status=kept, bloom=2"


def test_pages_sort_and_key_navigation(store):
    store.insert_new("mcqs", [mcq_row(n, pass_rate=(n * 7 % 10) / 10) for n in range(30)])
    view = VIEWS["mcqs"]
    page = fetch_page(
        store, view, Filter(tier="easy"), sort=Sort("pass_rate", descending=True), limit=4
    )
    assert page.total == 10 and len(page.rows) == 4
    rates = [r["pass_rate"] for r in page.rows]
    assert rates == sorted(rates, reverse=True)
    last = fetch_page(store, view, Filter(tier="easy"), offset=8, limit=4)
    assert len(last.rows) == 2 and last.page_number == 3 and last.page_count == 3
    first = neighbour_key(store, view, Filter(tier="easy"), None)
    assert first == "mcq-0000"
    assert neighbour_key(store, view, Filter(tier="easy"), first) == "mcq-0003"
    assert neighbour_key(store, view, Filter(tier="easy"), "mcq-0027") is None
    assert neighbour_key(store, view, Filter(tier="easy"), "mcq-0003", forward=False) == first
    assert position_of(store, view, Filter(tier="easy"), "mcq-0006") == (3, 10)


def test_histogram_clamps_to_the_range():
    assert histogram([0.0, 0.05, 0.5, 1.0, 1.2, None], bins=10) == [2, 0, 0, 0, 0, 1, 0, 0, 0, 2]
