"""Store-level faults: reviews racing steps, concurrent writers, killed runs, duplicate keys.

Every race here is made deterministic by doing the "other" side at a known point of the step
(a progress phase) through a second store handle, as another process (the TUI) would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import ingest_helpers as h
import pyarrow as pa
import pytest
from graph_helpers import fast_run_settings, fast_settings, fill_store, one_thread, small_planted  # noqa: F401
from mcq_helpers import ScriptedLLM, add_qas, wrong_letter_answerer

from microvqa_tui.common.decisions import effective_labels
from microvqa_tui.common.runs import record_run
from microvqa_tui.config import load_settings
from microvqa_tui.ingest import ingest_source
from microvqa_tui.progress import NullProgress
from microvqa_tui.services.review import Reviewer
from microvqa_tui.vocabulary import RUN_INTERRUPTED, RUN_RUNNING
from store import open_store

REPO = Path(__file__).resolve().parent.parent


class DuringPhase(NullProgress):
    """Calls `action` once, when the step starts the phase whose name begins with `phase`."""

    def __init__(self, phase: str, action) -> None:
        self.phase, self.action, self.fired = phase, action, False

    def start(self, description: str, total: int | None) -> None:
        if not self.fired and description.startswith(self.phase):
            self.fired = True
            self.action()


def _mcq_ids(store) -> list[str]:
    return sorted(store.ids("mcqs"))


def _reviews(store) -> dict[str, str]:
    return {r["mcq_id"]: r["review"] for r in store.rows("mcqs", columns=["mcq_id", "review"])}


def _run_select(store, settings, progress) -> None:
    from microvqa_tui.pipeline.select import SelectSettings, run_select

    cfg = settings.model_copy(update={"select": SelectSettings(difficulty=False)})
    run_select(store, cfg, llm=ScriptedLLM(answer=wrong_letter_answerer), progress=progress)


def _run_mcq(store, settings, progress) -> None:
    from microvqa_tui.pipeline.stage3 import run_mcq

    add_qas(store, 4, start=8)  # new work for the re-run
    run_mcq(store, settings, llm=ScriptedLLM(), progress=progress)


def _run_stage1(store, settings, progress) -> None:
    from stage_helpers import FakeLLM, add_sample, step_settings

    from microvqa_tui.pipeline.stage1 import Stage1Settings, run_stage1

    add_sample(store, 2)
    cfg = step_settings(settings, stage1=Stage1Settings())
    run_stage1(store, cfg, llm=FakeLLM(), progress=progress)


def _run_ingest(store, settings, progress) -> None:
    source = h.write_microvqa_pp(store.path.parent / "more.parquet", 6)
    ingest_source(store, source, h.settings(), progress=progress)


def _run_spatial(store, settings, progress) -> None:
    import spatial_helpers

    from microvqa_tui.pipeline.spatial import SpatialConfig, generate_spatial

    spatial_helpers.add_sample_figures(store, 4)
    cfg = SpatialConfig(families=("rotation",), count=2, seed=1, workers=1)
    generate_spatial(store, cfg, progress=progress)


# every step that writes MCQs or QAs, and the progress phase it starts after its reads
STEPS = {
    "select": (_run_select, "Selection · checks"),
    "mcq": (_run_mcq, "Stage 3 · MCQ generation"),
    "stage1": (_run_stage1, "stage 1"),
    "ingest": (_run_ingest, "ingest"),
    "spatial": (_run_spatial, "spatial:"),
}


@pytest.mark.parametrize("step", sorted(STEPS))
def test_a_review_made_while_a_step_runs_is_never_reverted(store, settings, step):
    from microvqa_tui.pipeline.stage3 import run_mcq

    add_qas(store, 8)
    run_mcq(store, settings, llm=ScriptedLLM())
    ids = _mcq_ids(store)
    reviewer = Reviewer(open_store(store.path), user="ana")  # the TUI, another handle

    def review() -> None:
        reviewer.bulk("mcq", "accept", ids=ids[:4])
        reviewer.bulk("mcq", "reject", ids=ids[4:])

    run, phase = STEPS[step]
    progress = DuringPhase(phase, review)
    run(store, settings, progress)
    assert progress.fired
    after = _reviews(open_store(store.path))
    expected = {i: "accepted" for i in ids[:4]} | {i: "rejected" for i in ids[4:]}
    assert {i: after[i] for i in ids} == expected
    # the audit trail and the items agree
    labels = effective_labels(open_store(store.path), "mcq")
    action = {"accepted": "accept", "rejected": "reject"}
    assert {i: labels[i] for i in ids} == {i: action[v] for i, v in expected.items()}


def test_a_qa_edit_made_while_the_graph_runs_is_never_reverted(store):
    from microvqa_tui.pipeline.graph.run import run_graph

    ids = fill_store(store, small_planted(30, seed=3))
    qa = ids["qa_ids"][0]
    reviewer = Reviewer(open_store(store.path), user="ana")

    def edit() -> None:
        reviewer.edit("qa", qa, {"question": "What does the edited question ask?"})

    progress = DuringPhase("graph: training", edit)
    run_graph(store, fast_run_settings(epochs=5), progress=progress, human_labels={}, seed=0)
    assert progress.fired
    row = open_store(store.path).get("qas", qa)
    assert row["question"] == "What does the edited question ask?"
    assert row["status"] in ("kept", "held_out") and row["score"] is not None


def test_a_group_decided_while_dedup_runs_is_not_superseded(store, monkeypatch):
    from dataset_helpers import build_dataset

    from microvqa_tui.pipeline.dedup import core, list_groups, run_dedup

    build_dataset(store, n_topics=3, copies=("jpeg",))
    run_dedup(store, load_settings(), kinds=["image"], text_backend="tfidf")
    groups = [g["group_id"] for g in list_groups(store, kind="image")]
    reviewer = Reviewer(open_store(store.path), user="ana")
    read_groups = core._existing_groups

    def read_then_decide(store_, kind):  # the decision lands right after dedup's read
        rows = read_groups(store_, kind)
        for group in groups:
            reviewer.decide_group(group, "keep_keeper")
        return rows

    monkeypatch.setattr(core, "_existing_groups", read_then_decide)
    # stricter: the JPEG copies drop out, so the groups found before are stale
    run_dedup(store, load_settings(), kinds=["image"], threshold=0.999, text_backend="tfidf")
    after = open_store(store.path).get_many("dup_groups", groups, ["decision"])
    assert [g["decision"] for g in after] == ["resolved"] * len(groups)


def test_steps_cannot_write_review_columns(store):
    from microvqa_tui.errors import StoreError

    with pytest.raises(StoreError, match="review service"):
        store.update_columns("mcqs", [{"mcq_id": "x", "review": "accepted"}], ["review"])


# ---------------------------------------------------------------------------- concurrent ingests
_INGEST_CHILD = """
import sys, time
from pathlib import Path
from microvqa_tui.config import IngestSettings, load_settings
from microvqa_tui.ingest import ingest_source
from store import open_store

go = Path(sys.argv[3])
while not go.exists():
    time.sleep(0.01)
ingest_source(open_store(sys.argv[1]), sys.argv[2], IngestSettings(batch_size=4, workers=1))
"""


def test_two_concurrent_ingests_write_each_key_once(tmp_path):
    source = h.write_microvqa_pp(tmp_path / "src.parquet", 40)
    reference = open_store(tmp_path / "reference")
    ingest_source(reference, source, h.settings(batch_size=4))
    store_path, go = tmp_path / "store", tmp_path / "go"
    open_store(store_path)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _INGEST_CHILD, str(store_path), str(source), str(go)], cwd=REPO
        )
        for _ in range(2)
    ]
    go.write_text("go")
    assert [child.wait(timeout=600) for child in children] == [0, 0]
    store = open_store(store_path)
    for table in h.TABLES:
        keys = store.rows(table, columns=[_key(table)])
        assert len(keys) == len(store.ids(table)), f"duplicate keys in {table}"
    assert h.snapshot(store) == h.snapshot(reference)


def _key(table: str) -> str:
    from store.schema import TABLES

    return TABLES[table][1]


def _add_duplicates(store, table: str, n: int) -> None:
    """Write `n` rows again with plain appends, as concurrent ingests of older versions did."""
    rows = store.page(table, limit=n)
    lance = store.db.open_table(table)
    lance.add(pa.Table.from_pylist(rows, schema=lance.schema))


def test_doctor_finds_and_repairs_duplicate_keys(store):
    from microvqa_tui.config import load_settings
    from microvqa_tui.doctor import repair_store, run_checks

    source = h.write_microvqa_pp(store.path.parent / "src.parquet", 12)
    ingest_source(store, source, h.settings())
    before = {t: store.ids(t) for t in ("captions", "mcqs")}
    _add_duplicates(store, "captions", 5)
    _add_duplicates(store, "mcqs", 3)
    settings = load_settings(store=store.path)
    checks = {c.name: c for c in run_checks(settings)}
    assert not checks["table:captions"].ok and "5 extra rows" in checks["table:captions"].detail
    assert "--repair" in checks["table:mcqs"].detail
    done = repair_store(settings)
    assert len(done) == 2 and "captions: removed 5 duplicate rows" in " ".join(done)
    fresh = open_store(store.path)
    for table, ids in before.items():
        assert fresh.ids(table) == ids and fresh.count(table) == len(ids)
    checks = {c.name: c for c in run_checks(settings)}
    assert checks["table:captions"].ok and checks["table:mcqs"].ok


# ---------------------------------------------------------------------------- killed runs
_RUN_CHILD = """
import sys, time
from microvqa_tui.common.runs import record_run
from microvqa_tui.config import load_settings
from store import open_store

with record_run(open_store(sys.argv[1]), sys.argv[2]):
    print("ready", flush=True)
    time.sleep(600)
"""


def _start_run(store_path: Path, step: str) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-c", _RUN_CHILD, str(store_path), step],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert child.stdout.readline().strip() == "ready"
    return child


def _statuses(store_path: Path, step: str) -> list[str]:
    rows = open_store(store_path).rows("runs", f"step = '{step}'", ["status", "started_at"])
    return [r["status"] for r in sorted(rows, key=lambda r: r["started_at"])]


def test_a_killed_run_is_marked_interrupted_by_the_next_run_a_live_one_is_not(store):
    killed = _start_run(store.path, "embed")
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    live = _start_run(store.path, "signals")
    try:
        assert _statuses(store.path, "embed") == [RUN_RUNNING]
        with record_run(open_store(store.path), "embed"):
            pass
        with record_run(open_store(store.path), "signals"):
            pass
        assert _statuses(store.path, "embed") == [RUN_INTERRUPTED, "done"]
        assert _statuses(store.path, "signals") == [RUN_RUNNING, "done"]  # still going
    finally:
        live.kill()
        live.wait()
    row = open_store(store.path).rows("runs", f"status = '{RUN_INTERRUPTED}'")[0]
    assert "killed or crashed" in row["message"]
