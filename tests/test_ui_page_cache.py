"""The kept first Browse page: shown before LanceDB loads, only while its table is unchanged."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from microvqa_tui.services.query import fetch_page
from microvqa_tui.services.views import VIEWS, Filter
from microvqa_tui.ui import page_cache
from tests.ui_helpers import make_app, mcq_row, settle

SIZE = (160, 48)


def test_versions_from_manifest_names_match_lancedb(store):
    assert page_cache.disk_version(store.path, "mcqs") is None  # no table yet
    store.insert_new("mcqs", [mcq_row(n) for n in range(5)])
    page = fetch_page(store, VIEWS["mcqs"], Filter(), limit=3)
    assert page.version is not None
    assert page_cache.disk_version(store.path, "mcqs") == page.version
    store.insert_new("mcqs", [mcq_row(9)])
    assert page_cache.disk_version(store.path, "mcqs") == store.table("mcqs").version
    assert store.table("mcqs").version > page.version


def test_a_kept_page_is_used_only_while_its_table_is_unchanged(store):
    store.insert_new("mcqs", [mcq_row(n) for n in range(5)])
    page = fetch_page(store, VIEWS["mcqs"], Filter(), limit=3)
    rows = page.rows
    assert page_cache.save(store.path, "mcqs", "mcqs", page.version, rows, page.total, 3)
    kept = page_cache.load(store.path, "mcqs", 3)
    assert kept == {"rows": rows, "total": 5}
    assert page_cache.load(store.path, "mcqs", 50) is None  # another page size
    assert page_cache.load(store.path, "qas", 3) is None  # another view
    store.upsert("mcqs", [mcq_row(0, status="held_out")])  # any write: a new version
    assert page_cache.load(store.path, "mcqs", 3) is None


def test_values_json_cannot_carry_exactly_are_not_kept(tmp_path):
    rows = [{"mcq_id": "a", "created_at": datetime(2025, 1, 1, tzinfo=UTC)}]
    assert not page_cache.save(tmp_path, "mcqs", "mcqs", 1, rows, 1, 50)
    assert not (tmp_path / page_cache.CACHE_DIR / "first-page-mcqs.json").exists()


async def test_browse_shows_the_kept_page_before_the_store_opens(settings, store, monkeypatch):
    store.insert_new("mcqs", [mcq_row(n) for n in range(60)])

    # A first session reads the page live and keeps it.
    app = make_app(settings, None, mode="browse")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        live_ids = [r["mcq_id"] for r in app.screen.page.rows]
        assert not app.screen.page.cached and len(live_ids) == 50

    # The next session shows it while the store is still opening (held here), then the
    # live read replaces it.
    import microvqa_tui.ui.app as app_module

    release = threading.Event()
    open_store = app_module._open_store

    def slow_open(path):
        release.wait(30)
        return open_store(path)

    monkeypatch.setattr(app_module, "_open_store", slow_open)
    app = make_app(settings, None, mode="browse")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        assert app.store is None
        assert screen.page is not None and screen.page.cached
        assert [r["mcq_id"] for r in screen.page.rows] == live_ids
        assert "opening the store" in str(screen.query_one("#page-info").render())
        await pilot.press("right_square_bracket")  # paging waits for the store, not lost
        release.set()
        await settle(pilot)
        assert not screen.page.cached and screen.page.offset == 50
        assert len(screen.page.rows) == 10

    # After a write the kept page is stale: the next session shows nothing until it reads.
    store.insert_new("mcqs", [mcq_row(n) for n in range(60, 65)])
    release.clear()
    app = make_app(settings, None, mode="browse")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.store is None and app.screen.page is None
        release.set()
        await settle(pilot)
        assert not app.screen.page.cached and app.screen.page.total == 65
