"""Schema evolution: a table an older version wrote (without the columns added since) gets
them on open, with defaults, and the versions kept in `params_json` before move into their
columns; writes of today's rows then go in."""

from __future__ import annotations

import json

import pyarrow as pa

from store import open_store
from store.schema import arrow_schema, utcnow

NEW = ["prompt_version", "selection_version"]
LATER = [*NEW, "superseded_by"]  # every mcqs column added after the first layout


def _mcq(mcq_id: str, params: dict | str) -> dict:
    return {
        "mcq_id": mcq_id,
        "qa_id": "qa-" + mcq_id,
        "figure_id": "fig",
        "image_ids": ["fig"],
        "question": "Which layer?",
        "choices": ["a", "b", "c", "d"],
        "correct_index": 1,
        "correct_answer": "b",
        "cot": "",
        "task_str": "",
        "family": "caption",
        "difficulty_tier": "",
        "status": "pending",
        "reason": "",
        "review": "unreviewed",
        "origin": "stage3",
        "model": "m",
        "params_json": params if isinstance(params, str) else json.dumps(params),
        "created_at": utcnow(),
        "run_id": "r",
    }


def _old_store(path, rows: list[dict]) -> None:
    """An `mcqs` table in the layout of a version before the version columns."""
    import lancedb

    current = arrow_schema("mcqs")
    old = pa.schema([f for f in current if f.name not in LATER])
    data = pa.Table.from_pylist(rows, schema=old)
    lancedb.connect(str(path)).create_table("mcqs", data=data)


def test_an_old_table_gets_the_new_columns_filled_from_params(tmp_path):
    path = tmp_path / "store"
    _old_store(
        path,
        [
            _mcq("m1", {"prompt_version": "p1", "select": {"version": "s1", "outcome": "x"}}),
            _mcq("m2", {"prompt_version": "p2"}),
            _mcq("m3", {}),
            _mcq("m4", "not json"),
        ],
    )
    store = open_store(path, create=False)
    rows = store.rows("mcqs", columns=["mcq_id", *NEW], order_by=["mcq_id"])
    assert rows == [
        {"mcq_id": "m1", "prompt_version": "p1", "selection_version": "s1"},
        {"mcq_id": "m2", "prompt_version": "p2", "selection_version": ""},
        {"mcq_id": "m3", "prompt_version": "", "selection_version": ""},
        {"mcq_id": "m4", "prompt_version": "", "selection_version": ""},
    ]
    assert sorted(store.arrow("mcqs").schema.names) == sorted(arrow_schema("mcqs").names)
    # Today's rows go in, and filters on the new columns work.
    new = {**_mcq("m5", {}), "prompt_version": "p1"}
    assert store.insert_new("mcqs", [new]) == 1
    assert sorted(store.column("mcqs", "mcq_id", "prompt_version = 'p1'")) == ["m1", "m5"]
    # A second open finds nothing to add and changes nothing.
    version = store.version("mcqs")
    again = open_store(path, create=False)
    assert again.count("mcqs", "selection_version = 's1'") == 1
    assert again.version("mcqs") == version


def test_a_write_first_evolves_the_table_too(tmp_path):
    path = tmp_path / "store"
    _old_store(path, [_mcq("m1", {"prompt_version": "p1"})])
    store = open_store(path)
    store.update_columns(
        "mcqs", [{"mcq_id": "m1", "selection_version": "s9"}], ["selection_version"]
    )
    assert store.rows("mcqs", columns=NEW) == [{"prompt_version": "p1", "selection_version": "s9"}]
