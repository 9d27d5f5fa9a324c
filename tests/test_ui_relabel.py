"""Relabelling QAs in the TUI: a decision made in Browse is stored through the review service,
the graph step started from the Pipeline screen retrains on it, and the QA's score and status
follow; a second run without new decisions retrains nothing."""

from __future__ import annotations

from textual.widgets import DataTable, Select

from microvqa_tui.pipeline.graph.run import run_graph
from microvqa_tui.vocabulary import REVIEWER_REJECTED
from tests.graph_helpers import fast_settings
from tests.ui_helpers import built_store_copy, make_app, settle

SIZE = (160, 48)


def _qas(store) -> dict[str, dict]:
    rows = store.rows("qas", columns=["qa_id", "score", "status", "reason"])
    return {r["qa_id"]: r for r in rows}


def _labels(store) -> list[tuple[str, str, str]]:
    rows = sorted(store.rows("decisions", "item_type = 'qa'"), key=lambda r: r["at"])
    return [(r["item_id"], r["action"], r["user"]) for r in rows]


async def _qas_by_score(pilot, *, descending: bool) -> None:
    screen = pilot.app.screen
    screen.query_one("#f-view", Select).value = "qas"
    await settle(pilot)
    screen.sort = None
    screen.action_sort("score")
    if descending:
        screen.action_sort("score")
    await settle(pilot)
    screen.query_one("#browse-table").focus()


async def test_a_qa_relabelled_in_browse_moves_after_the_graph_runs(
    settings, tmp_path, tmp_path_factory
):
    ui_settings = settings.model_copy(
        update={"store": tmp_path / "ui-store", "user": "tester", "graph": fast_settings()}
    )
    store = built_store_copy(tmp_path_factory, ui_settings.store)
    run_graph(store, ui_settings)
    before = _qas(store)
    ranked = sorted(before, key=lambda q: before[q]["score"], reverse=True)
    second, worst = ranked[1], ranked[-1]  # not the first row: the cursor must stay put
    app = make_app(ui_settings, store, mode="browse")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        await _qas_by_score(pilot, descending=True)
        await pilot.press("down")
        assert screen.current_key() == second
        await pilot.press("enter", "r")  # the detail, then reject
        await settle(pilot)
        assert _labels(store) == [(second, "reject", "tester")]
        assert screen.current_key() == second and screen.detail.item_id == second
        assert "reviewer label rejected" in str(screen.query_one(".detail-body").content)
        await _qas_by_score(pilot, descending=False)
        assert screen.current_key() == worst
        await pilot.press("a", "u")  # accept, then undo it: only the rejection stands
        await settle(pilot)
        assert [a for _, a, _ in _labels(store)] == ["reject", "accept", "undo"]
        assert screen.decided == 3 and any(
            "graph learns it" in n.message for n in app._notifications
        )

        await pilot.press("1")  # Pipeline: run the graph step from the TUI
        await settle(pilot)
        pipeline = app.screen
        rows = [s.stage.name for s in pipeline.statuses]
        pipeline.query_one("#stages", DataTable).move_cursor(row=rows.index("graph"))
        await pilot.press("s")
        await settle(pilot)
        after = _qas(store)
        retrained = store.count("runs", "step = 'graph' AND status = 'done'")
        await pilot.press("s")  # nothing new since: the scores stand, nothing retrains
        await settle(pilot)
        log = pipeline.query_one("#pipeline-log").text
        assert log.count("graph done") == 2 and "up to date, nothing retrained" in log
    assert after[second]["status"] == "held_out" and before[second]["status"] == "kept"
    assert after[second]["reason"].startswith(f"{REVIEWER_REJECTED}: ")
    assert after[second]["score"] < before[second]["score"]
    assert after[worst]["status"] == before[worst]["status"] == "held_out"  # the accept was undone
    assert store.count("runs", "step = 'graph' AND status = 'done'") == retrained
    assert _qas(store) == after
