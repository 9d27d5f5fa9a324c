"""SVG snapshots of every screen (pytest-textual-snapshot), kept in tests/snapshots/.

Deterministic: fixed terminal size, a fixed clock for "… ago", a fixed device/model status,
a fixed store name in the tab bar and the dark theme. Update with
`pytest tests/test_ui_snapshots.py --snapshot-update` after a deliberate change, and look at
the report.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_textual_snapshot

from tests.ui_helpers import built_store_copy, fixed_clock, make_app, settle

SIZE = (160, 48)


class SnapshotsFolder(pytest_textual_snapshot.SVGImageExtension):
    """Snapshots in tests/snapshots/<test module>/ rather than tests/__snapshots__/."""

    @classmethod
    def dirname(cls, *, test_location) -> str:
        return str(Path(test_location.filepath).parent / "snapshots" / test_location.basename)


@pytest.fixture(autouse=True)
def snapshot_folder(monkeypatch):
    monkeypatch.setattr(pytest_textual_snapshot, "SVGImageExtension", SnapshotsFolder)


@pytest.fixture
def app_factory(settings, tmp_path, tmp_path_factory):
    ui_settings = settings.model_copy(update={"store": tmp_path / "ui-store", "user": "tester"})
    store = built_store_copy(tmp_path_factory, ui_settings.store)

    def make(mode: str):
        return make_app(ui_settings, store, mode=mode)

    return make


def compare(snap_compare, app, press=()):
    return snap_compare(app, press=press, terminal_size=SIZE, run_before=settle)


def test_pipeline_screen(snap_compare, app_factory):
    assert compare(snap_compare, app_factory("pipeline"))


def test_pipeline_engine_choice(snap_compare, app_factory):
    """Ray chosen, the cursor on a step that can run there."""

    async def choose_ray(pilot):
        await settle(pilot)
        await pilot.press("down", "e")
        await settle(pilot)

    assert snap_compare(app_factory("pipeline"), terminal_size=SIZE, run_before=choose_ray)


def test_browse_screen_with_detail(snap_compare, app_factory):
    async def open_detail(pilot):
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)

    app = app_factory("browse")
    assert snap_compare(app, terminal_size=SIZE, run_before=open_detail)


def test_browse_qa_rejected(snap_compare, app_factory):
    """A QA rejected from Browse: the history in its detail, the note that the graph learns it."""
    from microvqa_tui.services.review import Reviewer

    app = app_factory("browse")

    async def reject_a_qa(pilot):
        await settle(pilot)
        app._reviewer = Reviewer(app.store, "tester", clock=fixed_clock)  # a fixed decision time
        app.screen.query_one("#f-view").value = "qas"
        await settle(pilot)
        app.screen.query_one("#browse-table").focus()
        await pilot.press("enter", "r")
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=reject_a_qa)


def test_review_screen(snap_compare, app_factory):
    assert compare(snap_compare, app_factory("review"))


def test_edit_modal(snap_compare, app_factory):
    async def open_edit(pilot):
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)

    assert snap_compare(app_factory("review"), terminal_size=SIZE, run_before=open_edit)


def test_duplicates_screen(snap_compare, app_factory):
    assert compare(snap_compare, app_factory("duplicates"))


def test_stats_screen(snap_compare, app_factory):
    assert compare(snap_compare, app_factory("stats"))


def test_export_screen(snap_compare, app_factory):
    assert compare(snap_compare, app_factory("export"))


def test_help_screen(snap_compare, app_factory):
    async def open_help(pilot):
        await settle(pilot)
        await pilot.press("f1")
        await settle(pilot)

    assert snap_compare(app_factory("pipeline"), terminal_size=SIZE, run_before=open_help)
