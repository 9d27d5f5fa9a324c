"""Pilot tests of the workbench: every screen and the main flows on a small real store."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest
from textual.widgets import DataTable, Input, Select

from tests.ui_helpers import SAMPLE_MANIFEST, built_store_copy, make_app, mcq_row, settle

SIZE = (160, 48)


@pytest.fixture
def ui_settings(settings, tmp_path):
    return settings.model_copy(update={"store": tmp_path / "ui-store", "user": "tester"})


@pytest.fixture
def ui_store(tmp_path_factory, ui_settings):
    return built_store_copy(tmp_path_factory, ui_settings.store)


def notifications(app) -> list[str]:
    return [n.message for n in app._notifications]


def decisions(store) -> list[dict]:
    rows = store.page("decisions", limit=10_000)
    return sorted(rows, key=lambda r: r["at"])


def test_ui_start_up_imports_no_heavy_library():
    code = (
        "import sys, microvqa_tui.ui.app;"
        "print([m for m in ('torch', 'transformers', 'open_clip', 'llama_cpp', 'lancedb',"
        " 'torch_geometric') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------- pipeline
async def test_pipeline_ingests_the_sample_from_an_empty_store(ui_settings):
    from store import open_store

    store = open_store(ui_settings.store)
    app = make_app(ui_settings, store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        table = screen.query_one("#stages", DataTable)
        assert table.row_count == len(screen.statuses) >= 2
        assert screen.statuses[0].stage.name == "ingest"
        assert screen.statuses[0].status == "never run"
        await pilot.press("i")
        await settle(pilot)
        path_input = app.screen.query_one("#path", Input)
        assert path_input.value.endswith("manifest.jsonl")
        path_input.value = str(SAMPLE_MANIFEST)
        await pilot.press("enter")
        await settle(pilot)
        await settle(pilot)
        assert store.count("figures") == 32
        assert screen.statuses[0].status == "done"
        assert screen.statuses[0].counts["figures_new"] == 32
        assert "ingest done" in screen.query_one("#pipeline-log").text
        assert any("ingest finished" in n for n in notifications(app))
        # A resume re-runs the same source and adds nothing.
        await pilot.press("R")
        await settle(pilot)
        await settle(pilot)
        assert store.count("figures") == 32
        assert store.count("runs", "step = 'ingest' AND status = 'done'") == 2


async def test_pipeline_cancel_stops_at_a_batch_boundary(ui_settings, ui_store, monkeypatch):
    """A stage cancelled from the UI stops between batches: whole batches only are written."""
    import microvqa_tui.pipeline.steps as steps

    gate, reached = threading.Event(), threading.Event()

    def fake_step(name, store, settings, *, progress, cancel):
        progress.start("fake step", 10)
        for i in range(10):
            cancel.check()
            store.insert_new(
                "quarantine",
                [
                    {
                        "quarantine_id": f"q{i}",
                        "stage": "fake",
                        "source": "t",
                        "reason": "x",
                        "created_at": "2025-01-01T00:00:00Z",
                    }
                ],
            )
            progress.advance()
            if i == 1:
                reached.set()
                gate.wait(10)
        raise AssertionError("not cancelled")

    monkeypatch.setattr(steps, "run_step", fake_step)
    app = make_app(ui_settings, ui_store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        screen.query_one("#stages", DataTable).move_cursor(row=1)  # embed
        await pilot.press("s")
        assert reached.wait(10)
        await pilot.press("c")
        gate.set()
        await settle(pilot)
        assert screen.running is None
        assert "cancelled" in screen.query_one("#pipeline-log").text
        assert any("cancelled" in n for n in notifications(app))
        assert ui_store.count("quarantine", "stage = 'fake'") == 2


# ---------------------------------------------------------------------- browse
async def test_browse_filters_sorts_pages_and_opens_details(ui_settings, ui_store):
    ui_store.insert_new("mcqs", [mcq_row(n, status="pending") for n in range(80)])
    total = ui_store.count("mcqs")
    app = make_app(ui_settings, ui_store, mode="browse")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        table = screen.query_one("#browse-table")
        assert screen.page.total == total and table.row_count == 50
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert screen.page.offset == 50 and table.row_count == 50
        await pilot.press("G")
        await settle(pilot)
        assert screen.page.offset == 100 and table.row_count == total - 100
        await pilot.press("left_square_bracket")
        await settle(pilot)
        assert screen.page.offset == 50
        await pilot.press("g")
        await settle(pilot)
        assert screen.page.offset == 0

        # Filter: status kept (a Select), then a text search (an Input, applied on Enter).
        screen.query_one("#f-status", Select).value = "kept"
        await settle(pilot)
        kept = ui_store.count("mcqs", "status = 'kept'")
        assert screen.page.total == kept and screen.page.where == "status = 'kept'"
        search = screen.query_one("#f-text", Input)
        search.value = "SAMPLE-003"
        search.focus()
        await pilot.press("enter")
        await settle(pilot)
        assert (
            screen.page.total
            == ui_store.count(
                "mcqs", "status = 'kept' AND strpos(lower(question), 'sample-003') > 0"
            )
            == 2
        )
        table.focus()
        await pilot.press("x")  # clears every filter
        await settle(pilot)
        assert screen.page.total == total

        # Sort by pass rate, descending on the second press.
        table.focus()
        screen.action_sort("pass_rate")
        await settle(pilot)
        rates = [r["pass_rate"] for r in screen.page.rows]
        known = [r for r in rates if r is not None]
        assert known == sorted(known) and rates[: len(known)] == known  # nulls last
        screen.action_sort("pass_rate")
        await settle(pilot)
        rates = [r["pass_rate"] for r in screen.page.rows if r["pass_rate"] is not None]
        assert rates == sorted(rates, reverse=True)

        # Detail of a generated MCQ: figure image, caption, QA with graph score, signals, neighbours.
        screen.query_one("#f-review", Select).value = "unreviewed"
        screen.query_one("#f-status", Select).value = "held_out"
        await settle(pilot)
        table.focus()
        table.move_cursor(0)
        await pilot.press("enter")
        await settle(pilot)
        detail = screen.detail
        assert detail is not None and detail.mcq is not None and detail.qa is not None
        assert detail.image is not None
        assert detail.signals and detail.neighbours
        assert detail.hold_out_reason == "answerable without the image"
        body = str(screen.query_one(".detail-body").content)
        for text in ("Caption", "graph score", "Signals", "Graph neighbours", "Held out", "✓"):
            assert text in body
        await pilot.press("escape")
        assert not screen.query_one("#browse-detail").display


async def test_browse_switches_tables(ui_settings, ui_store):
    app = make_app(ui_settings, ui_store, mode="browse")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        await pilot.press("t")
        await settle(pilot)
        assert screen.view_name == "qas" and screen.page.total == 36
        screen.query_one("#f-min", Input).value = "0.5"
        screen.query_one("#f-min", Input).focus()
        await pilot.press("enter")
        await settle(pilot)
        assert screen.page.total == ui_store.count("qas", "score >= 0.5")
        screen.query_one("#browse-table").focus()
        await pilot.press("t")
        await settle(pilot)
        assert screen.view_name == "figures" and screen.page.total == 32
        assert not screen.query_one("#field-status").display


# ---------------------------------------------------------------------- review
async def test_review_accept_reject_undo_and_edit(ui_settings, ui_store):
    app = make_app(ui_settings, ui_store, mode="review")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        first = screen.state.key
        assert first is not None and screen.state.position == 1
        total = screen.state.total
        assert total == ui_store.count("mcqs", "review = 'unreviewed'")

        await pilot.press("a")
        await settle(pilot)
        assert ui_store.get("mcqs", first)["review"] == "accepted"
        second = screen.state.key
        assert second not in (None, first)
        await pilot.press("r")
        await settle(pilot)
        assert ui_store.get("mcqs", second)["review"] == "rejected"
        rows = decisions(ui_store)
        assert [(r["action"], r["item_id"], r["user"]) for r in rows] == [
            ("accept", first, "tester"),
            ("reject", second, "tester"),
        ]
        assert json.loads(rows[1]["changes_json"])["review"] == ["unreviewed", "rejected"]

        await pilot.press("u")
        await settle(pilot)
        assert ui_store.get("mcqs", second)["review"] == "unreviewed"
        assert screen.state.key == second
        assert decisions(ui_store)[-1]["action"] == "undo"

        # j / k move within the filter.
        await pilot.press("j")
        await settle(pilot)
        third = screen.state.key
        assert third not in (first, second)
        await pilot.press("k")
        await settle(pilot)
        assert screen.state.key == second

        # Edit in the modal form; the decision records before/after.
        before = ui_store.get("mcqs", second)
        await pilot.press("e")
        await settle(pilot)
        modal = app.screen
        modal.query_one("#edit-question").text = "Which organelle is labelled?"
        modal.query_one("#edit-choices").text = "mitochondrion\nnucleus\nGolgi"
        await settle(pilot)
        modal.query_one("#edit-correct", Select).value = 1
        await pilot.press("ctrl+s")
        await settle(pilot)
        after = ui_store.get("mcqs", second)
        assert after["question"] == "Which organelle is labelled?"
        assert after["choices"] == ["mitochondrion", "nucleus", "Golgi"]
        assert after["correct_answer"] == "nucleus"
        edit = decisions(ui_store)[-1]
        assert edit["action"] == "edit"
        changes = json.loads(edit["changes_json"])
        assert changes["question"] == [before["question"], "Which organelle is labelled?"]
        assert "edited" in str(screen.query_one("#review-status").content)


async def test_review_invalid_edit_and_empty_undo_are_notifications(ui_settings, ui_store):
    app = make_app(ui_settings, ui_store, mode="review")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("u")
        await settle(pilot)
        assert any("nothing to undo" in n for n in notifications(app))
        await pilot.press("e")
        await settle(pilot)
        app.screen.query_one("#edit-choices").text = "only one option"
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert any("at least two" in n for n in notifications(app))
        assert ui_store.count("decisions") == 0


async def test_review_bulk_on_the_filter_with_confirmation(ui_settings, ui_store):
    app = make_app(ui_settings, ui_store, mode="review")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        screen.query_one("#f-tier", Select).value = "easy"
        await settle(pilot)
        easy = ui_store.count("mcqs", "review = 'unreviewed' AND difficulty_tier = 'easy'")
        assert screen.state.total == easy > 0
        screen.query_one("#review-item").focus()
        await pilot.press("A")
        await settle(pilot)
        assert "Accept" in str(app.screen.query_one(".dialog-title").content)
        await pilot.press("y")
        await settle(pilot)
        assert ui_store.count("mcqs", "review = 'accepted'") == easy
        assert ui_store.count("decisions", "action = 'accept'") == easy
        assert screen.state.key is None  # nothing unreviewed and easy is left
        await pilot.press("u")
        await settle(pilot)
        assert ui_store.count("mcqs", "review = 'accepted'") == 0
        # A cancelled confirmation changes nothing.
        await pilot.press("X")
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        assert ui_store.count("mcqs", "review = 'rejected'") == 0


async def test_browse_selection_opens_in_review(ui_settings, ui_store):
    app = make_app(ui_settings, ui_store, mode="browse")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.screen.query_one("#f-tier", Select).value = "hard"
        await settle(pilot)
        app.screen.query_one("#browse-table").focus()
        await pilot.press("v")
        await settle(pilot)
        screen = app.screen
        assert screen.MODE == "review"
        assert screen.filter.tier == "hard"
        assert screen.state.total == ui_store.count("mcqs", "difficulty_tier = 'hard'")


# ---------------------------------------------------------------------- duplicates
async def test_duplicates_resolve_a_group_and_undo(ui_settings, ui_store):
    app = make_app(ui_settings, ui_store, mode="duplicates")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert screen.page.total == 2
        group = screen.selected()
        assert group["kind"] == "question" and group["size"] == 3  # biggest first
        cards = screen.query(".member-card")
        assert len(cards) == 3 and len(screen.query(".member-card.-keeper")) == 1
        await pilot.press("k")
        await settle(pilot)
        assert ui_store.get("dup_groups", group["group_id"])["decision"] == "resolved"
        others = [m for m in group["member_ids"] if m != group["keeper_id"]]
        assert all(ui_store.get("mcqs", m)["review"] == "rejected" for m in others)
        assert ui_store.get("mcqs", group["keeper_id"])["review"] == "unreviewed"
        assert screen.page.total == 1  # pending only
        await pilot.press("f")
        await settle(pilot)
        assert screen.page.total == 2
        await pilot.press("u")
        await settle(pilot)
        assert ui_store.get("dup_groups", group["group_id"])["decision"] == "pending"
        assert all(ui_store.get("mcqs", m)["review"] == "unreviewed" for m in others)


async def test_duplicates_empty_state_says_run_dedup_first(ui_settings):
    from store import open_store

    store = open_store(ui_settings.store)
    app = make_app(ui_settings, store, mode="duplicates")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "run dedup first" in str(app.screen.query_one("#dup-info").content)
        await pilot.press("k")
        await settle(pilot)
        assert any("no group selected" in n for n in notifications(app))


# ---------------------------------------------------------------------- stats, export, help
async def test_stats_shows_funnel_scores_and_distributions(ui_settings, ui_store):
    app = make_app(ui_settings, ui_store, mode="stats")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        stats = app.screen.stats
        assert stats.funnel[0] == ("figures ingested", 32)
        assert sum(stats.score_hist) == 36
        assert sum(count for _, count in stats.bloom) == ui_store.count("mcqs")
        assert dict(stats.tiers).keys() <= {"easy", "medium", "hard"}
        assert [step for step, _, _ in stats.run_counts][:2] == ["ingest", "stage1"]


async def test_help_palette_and_screen_switching(ui_settings, ui_store):
    app = make_app(ui_settings, ui_store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for key, mode in zip(
            "234561", ["browse", "review", "duplicates", "stats", "export", "pipeline"], strict=True
        ):
            await pilot.press(key)
            await settle(pilot)
            assert app.current_mode == mode
        await pilot.press("f1")
        await settle(pilot)
        help_text = str(app.screen.query_one("#help-text").content)
        for text in ("Accept", "Keep keeper", "Next page", "Ingest", "Export"):
            assert text in help_text
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await settle(pilot)
        await pilot.press(*"go to stats")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert app.current_mode == "stats"
        await pilot.press("ctrl+t")
        assert app.theme == "microvqa-light"


async def test_export_writes_a_dataset_with_the_real_export_step(ui_settings, ui_store, tmp_path):
    app = make_app(ui_settings, ui_store, mode="export")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert "would be exported" in str(screen.query_one("#export-preview").content)
        screen.query_one("#export-format", Select).value = "jsonl"
        screen.query_one("#export-out", Input).value = str(tmp_path / "dataset")
        await pilot.press("ctrl+e")
        await settle(pilot)
        assert "Wrote" in str(screen.query_one("#export-result").content), notifications(app)
        report = screen.last_report
        assert sum(report["splits"].values()) == ui_store.count("mcqs", "status = 'kept'")
        assert (tmp_path / "dataset").is_dir() and any((tmp_path / "dataset").iterdir())
