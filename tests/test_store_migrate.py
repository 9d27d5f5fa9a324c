"""A store written before the typed quarantine fields and `mcqs.superseded_by` existed keeps
working: opening it adds the columns, fills them from the old encodings once, and the steps
that resume from those rows read the same facts as before."""

from __future__ import annotations

import json
from collections import Counter

import lancedb
import pyarrow as pa
import pytest

from microvqa_tui.common.quarantine import Quarantined
from microvqa_tui.pipeline.select.run import KEY, managed_rows
from microvqa_tui.pipeline.stage1.run import _attempts_made
from microvqa_tui.pipeline.stage3.resume import failed_qas
from microvqa_tui.vocabulary import ITEM_CAPTION, STAGE_STAGE1, SUPERSEDED
from store import locks, open_store
from store.ids import text_id
from store.migrate import missing_columns
from store.schema import TABLES, arrow_schema, utcnow

# The columns each table gained since the previous schema.
ADDED = {
    "quarantine": ("item_kind", "item_id", "task_type", "attempt", "version"),
    "mcqs": ("superseded_by",),
}
TASK = "expert_visual_understanding"


def old_schema(table: str) -> pa.Schema:
    return pa.schema([f for f in arrow_schema(table) if f.name not in ADDED[table]])


def write_old_store(path, tables: dict[str, list[dict]]) -> None:
    """What the previous version wrote, made with LanceDB directly: the store API would
    create the tables with today's schema."""
    db = lancedb.connect(str(path))
    for name, rows in tables.items():
        model = TABLES[name][0]
        full = [model(**row).model_dump() for row in rows]
        schema = old_schema(name)
        db.create_table(name, pa.Table.from_pylist(full, schema=schema).select(schema.names))
    locks.write_marker(path)


def old_quarantine(stage: str, source: str, ref: str, reason: str) -> dict:
    return {
        "quarantine_id": text_id(stage, source, ref, reason),
        "stage": stage,
        "source": source,
        "ref": ref,
        "reason": reason,
        "created_at": utcnow(),
    }


def old_mcq(n: int, reason: str = "", *, selected: bool = False) -> dict:
    status = "held_out" if reason else "pending"
    params = {KEY: {"version": "s1"}} if selected else {}
    return {
        "mcq_id": f"mcq{n}",
        "qa_id": f"qa{n}",
        "figure_id": "fig1",
        "question": f"Question {n}?",
        "choices": ["a", "b", "c", "d"],
        "correct_index": 0,
        "correct_answer": "a",
        "origin": "stage3",
        "status": status,
        "reason": reason,
        "params_json": json.dumps(params),
        "created_at": utcnow(),
    }


@pytest.fixture
def old_path(tmp_path):
    path = tmp_path / "old"
    write_old_store(
        path,
        {
            "quarantine": [
                old_quarantine("stage1", f"{TASK}@p1#0", "cap1", "unparsable_output"),
                old_quarantine("stage1", f"{TASK}@p1#1", "cap1", "question_generic"),
                old_quarantine("stage1", f"{TASK}@p0#0", "cap2", "answer_empty"),
                old_quarantine("mcq", "qa1", "m1#1", "bad_options"),
                old_quarantine("mcq", "qa1", "m1#2", "empty_cot"),
                old_quarantine("mcq", "qa2", "m0#1", "empty_cot"),
                old_quarantine("ingest", "/data/manifest.jsonl", "line 3", "missing_file"),
            ],
            "mcqs": [
                old_mcq(1, "superseded: regenerated with prompt m1", selected=True),
                old_mcq(2, selected=True),
                old_mcq(3),
            ],
        },
    )
    return path


def test_opening_an_old_store_adds_and_fills_the_typed_quarantine_fields(old_path):
    store = open_store(old_path, create=False)
    rows = {(r["stage"], r["source"], r["ref"]): r for r in store.rows("quarantine")}
    assert missing_columns("quarantine", store.schema("quarantine")) == []
    typed = {k: (r["item_kind"], r["item_id"], r["task_type"], r["attempt"], r["version"])
             for k, r in rows.items()}  # fmt: skip
    assert typed == {
        ("stage1", f"{TASK}@p1#0", "cap1"): ("caption", "cap1", TASK, 0, "p1"),
        ("stage1", f"{TASK}@p1#1", "cap1"): ("caption", "cap1", TASK, 1, "p1"),
        ("stage1", f"{TASK}@p0#0", "cap2"): ("caption", "cap2", TASK, 0, "p0"),
        ("mcq", "qa1", "m1#1"): ("qa", "qa1", "", 1, "m1"),
        ("mcq", "qa1", "m1#2"): ("qa", "qa1", "", 2, "m1"),
        ("mcq", "qa2", "m0#1"): ("qa", "qa2", "", 1, "m0"),
        ("ingest", "/data/manifest.jsonl", "line 3"): ("input", "line 3", "", 0, ""),
    }


def test_resuming_steps_read_the_old_rows_through_the_typed_fields(old_path):
    store = open_store(old_path, create=False)
    assert _attempts_made(store, "p1") == Counter({("cap1", TASK): 2})
    assert _attempts_made(store, "p0") == Counter({("cap2", TASK): 1})
    assert failed_qas(store, "m1") == {"qa1"} and failed_qas(store, "m0") == {"qa2"}


def test_the_upgrade_happens_once_and_new_rows_are_written_alongside(old_path):
    store = open_store(old_path, create=False)
    store.count("quarantine")
    version = store.version("quarantine")
    again = open_store(old_path, create=False)
    assert again.count("quarantine") == 7 and again.version("quarantine") == version
    new = Quarantined(
        stage=STAGE_STAGE1,
        reason="schema_invalid",
        item_kind=ITEM_CAPTION,
        item_id="cap3",
        source=f"{TASK}@p1#0",
        ref="cap3",
        task_type=TASK,
        version="p1",
    )
    assert again.insert_new("quarantine", [new.row()]) == 1
    assert _attempts_made(again, "p1")[("cap3", TASK)] == 1


def test_a_superseded_prefix_becomes_the_superseded_by_column(old_path):
    store = open_store(old_path, create=False)
    mcqs = {r["mcq_id"]: r for r in store.rows("mcqs")}
    assert (mcqs["mcq1"]["superseded_by"], mcqs["mcq1"]["reason"]) == ("m1", SUPERSEDED)
    assert mcqs["mcq1"]["status"] == "held_out"
    assert mcqs["mcq2"]["superseded_by"] == mcqs["mcq3"]["superseded_by"] == ""
    # the selection step leaves the superseded MCQ alone, as it did by the reason's prefix
    assert [r["mcq_id"] for r in managed_rows(store)] == ["mcq2", "mcq3"]


def test_a_write_is_the_first_thing_done_to_an_old_table(old_path):
    store = open_store(old_path, create=False)
    store.update_where("mcqs", "mcq_id = 'mcq3'", {"status": "kept"})
    assert store.rows("mcqs", "mcq_id = 'mcq1'", ["superseded_by"]) == [{"superseded_by": "m1"}]


def test_the_writer_refuses_a_reason_outside_the_vocabulary():
    with pytest.raises(ValueError, match="unparsable"):
        Quarantined(stage="mcq", reason="unparsable", item_kind="qa", item_id="qa1", source="qa1")


def test_a_crash_between_adding_and_filling_is_finished_by_the_next_open(old_path, monkeypatch):
    from store import migrate

    def killed(tbl):
        raise KeyboardInterrupt  # the process dies after add_columns, before the fill

    monkeypatch.setitem(migrate.BACKFILLS, "quarantine", [killed])
    with pytest.raises(KeyboardInterrupt):
        open_store(old_path, create=False).count("quarantine")
    monkeypatch.undo()
    store = open_store(old_path, create=False)
    assert failed_qas(store, "m1") == {"qa1"}
    assert not migrate.pending_path(old_path, "quarantine").exists()
