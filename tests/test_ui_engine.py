"""The Pipeline screen's engine choice: a step that can run on Ray is started there from the
TUI (the real Ray path on a local Ray of 2 CPUs), a step that cannot runs locally."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Input, Select

from microvqa_tui.engines import EngineSettings
from microvqa_tui.pipeline.embed import run_embed
from tests.test_engines import _assert_same, _contents, _fill, _settings
from tests.ui_helpers import built_store_copy, make_app, settle

SIZE = (160, 48)


def _row_of(screen, name: str) -> int:
    return [s.stage.name for s in screen.statuses].index(name)


async def _start(pilot, name: str) -> None:
    screen = pilot.app.screen
    screen.query_one("#stages", DataTable).move_cursor(row=_row_of(screen, name))
    await pilot.press("s")
    await settle(pilot)


async def test_the_engine_choice_reaches_the_core_for_ray_capable_steps_only(
    settings, tmp_path, tmp_path_factory, monkeypatch
):
    """The worker calls the core with the chosen engine and address; a step without a Ray
    engine (its `StepSpec.engines`) runs locally and the screen says so."""
    import microvqa_tui.pipeline.steps as steps
    from microvqa_tui.pipeline.steps import STEPS_BY_NAME

    class Report:
        def to_dict(self):
            return {"items": 1}

    calls: list[tuple[str, str, str]] = []

    def fake_step(name, store, run_settings, *, progress, cancel):
        calls.append((name, run_settings.engine.kind, run_settings.engine.ray_address))
        return Report()

    monkeypatch.setattr(steps, "run_step", fake_step)
    engine = EngineSettings(kind="local", ray_address="ray://head:10001")
    ui_settings = settings.model_copy(update={"store": tmp_path / "ui-store", "engine": engine})
    app = make_app(ui_settings, built_store_copy(tmp_path_factory, ui_settings.store))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        address = screen.query_one("#ray-address", Input)
        assert screen.query_one("#engine", Select).value == "local" and address.disabled
        assert address.value == "ray://head:10001"  # the settings' default
        await _start(pilot, "embed")
        await pilot.press("e")
        await settle(pilot)
        assert screen.query_one("#engine", Select).value == "ray" and not address.disabled
        await _start(pilot, "embed")
        address.value = ""  # empty: a local Ray
        await _start(pilot, "signals")
        assert "(no ray engine: runs locally)" not in str(screen.query_one("#stage-info").render())
        await _start(pilot, "graph")
        info = str(screen.query_one("#stage-info").render())
        log = screen.query_one("#pipeline-log").text
    assert calls == [
        ("embed", "local", "ray://head:10001"),
        ("embed", "ray", "ray://head:10001"),
        ("signals", "ray", ""),
        ("graph", "local", "ray://head:10001"),
    ]
    assert "ray" not in STEPS_BY_NAME["graph"].engines
    assert "runs on: local" in info and "(no ray engine: runs locally)" in info
    assert "embed started on ray at ray://head:10001" in log
    assert "signals started on ray (a local Ray on this machine's cores)" in log
    assert "graph started\n" in log + "\n"


@pytest.mark.slow
async def test_embed_started_on_ray_from_the_tui_writes_what_an_in_process_run_writes(
    tmp_path,
):
    """The real Ray path: no address, so the run starts a local Ray of 2 CPUs (2 actors),
    with progress shown and the same vectors as an in-process run. As in `microvqa tui`
    (pytest enables faulthandler, the app does not), faulthandler is off at the start."""
    import faulthandler
    import sys

    from store import open_store

    reference_path, path = tmp_path / "reference", tmp_path / "store"
    _fill(open_store(reference_path), extra_captions=10)
    run_embed(open_store(reference_path), _settings(reference_path))
    store = open_store(path)
    _fill(store, extra_captions=10)
    app = make_app(_settings(path), store)  # engine local by default, local_cpus=2
    faulthandler.disable()
    try:
        await _embed_on_ray(app)
    finally:
        faulthandler.enable(file=sys.__stderr__)
    _assert_same(_contents(open_store(reference_path)), _contents(open_store(path)))
    runs = open_store(path).rows("runs", "step = 'embed'", columns=["status", "config_json"])
    assert [r["status"] for r in runs] == ["done"] and '"engine": "ray"' in runs[0]["config_json"]


async def _embed_on_ray(app) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await _start(pilot, "embed")
        await settle(pilot)
        screen = app.screen
        log = screen.query_one("#pipeline-log").text
        progress = screen.query_one("#pipeline-progress")
        assert screen.running is None
        assert "embed started on ray (a local Ray on 2 CPUs)" in log
        assert "embed done" in log, log
        assert progress.done == progress.total == 16 + 3 + 6  # captions, QAs, figures


def test_the_log_sums_a_steps_per_space_counts():
    """embed reports counts per space: the log line gives their totals, not just the time."""
    from microvqa_tui.ui.screens.pipeline import _summary

    space = {"model": "m", "items": 32, "already": 16, "embedded": 16, "failed": 0}
    pixel = {"model": "p", "items": 32, "already": 0, "embedded": 32, "failed": 0}
    report = {"run_id": "r", "spaces": {"text_caption": space, "pixel_image": pixel}}
    report |= {"unavailable": {}, "seconds": 62.9}
    assert _summary(report) == "items 64, already 16, embedded 48, failed 0, seconds 62.9"
    graph = {"qas": 9, "kept": 7, "threshold": 0.0, "imported_mcqs": {}, "up_to_date": True}
    assert _summary(graph) == "up to date, nothing retrained: qas 9, kept 7"
