from __future__ import annotations

import numpy as np
import pytest

from microvqa_tui.common.runs import record_run
from microvqa_tui.errors import Cancelled
from store.ids import content_id, text_id
from store.schema import utcnow


def caption_row(figure_id: str, text: str) -> dict:
    return {
        "caption_id": text_id(figure_id, text),
        "figure_id": figure_id,
        "text": text,
        "created_at": utcnow(),
    }


def test_ids_are_content_addressed():
    assert content_id(b"abc") == content_id(b"abc")
    assert content_id(b"abc") != content_id(b"abd")
    # Cosmetic whitespace does not change a text id; field boundaries do.
    assert text_id("f", "a  cell\n") == text_id("f", "a cell")
    assert text_id("ab", "c") != text_id("a", "bc")


def test_insert_new_is_idempotent(store):
    rows = [caption_row("fig1", f"caption {i}") for i in range(10)]
    assert store.insert_new("captions", rows) == 10
    assert store.insert_new("captions", rows) == 0
    # Duplicates inside one batch are written once.
    more = [caption_row("fig2", "same"), caption_row("fig2", "same")]
    assert store.insert_new("captions", more) == 1
    assert store.count("captions") == 11


def test_upsert_replaces_by_key(store):
    row = caption_row("fig1", "a caption")
    store.upsert("captions", [row])
    store.upsert("captions", [{**row, "source": "second"}])
    assert store.count("captions") == 1
    assert store.get("captions", row["caption_id"])["source"] == "second"


def test_page_filters_offsets_and_projects(store):
    store.insert_new("captions", [caption_row(f"fig{i % 3}", f"text {i}") for i in range(30)])
    page = store.page(
        "captions", where="figure_id = 'fig1'", columns=["caption_id", "text"], limit=4
    )
    assert len(page) == 4
    assert set(page[0]) == {"caption_id", "text"}
    all_fig1 = store.page("captions", where="figure_id = 'fig1'", limit=100)
    assert len(all_fig1) == 10
    second = store.page("captions", where="figure_id = 'fig1'", offset=4, limit=100)
    assert len(second) == 6
    ids = [r["caption_id"] for r in all_fig1]
    assert {r["caption_id"] for r in second} <= set(ids)
    assert store.count("captions", "figure_id = 'fig1'") == 10


def test_get_many_and_quoting(store):
    rows = [caption_row("it's", "quote ' inside"), caption_row("x", "y")]
    store.insert_new("captions", rows)
    got = store.get_many("captions", [r["caption_id"] for r in rows])
    assert {g["figure_id"] for g in got} == {"it's", "x"}
    assert store.page("captions", where="figure_id = 'it''s'")[0]["text"] == "quote ' inside"


def test_batches_stream_filtered_columns_of_any_table(store):
    store.insert_new("captions", [caption_row(f"fig{i % 3}", f"text {i}") for i in range(30)])
    got = list(store.batches("captions", ["caption_id"], "figure_id = 'fig1'", batch_size=4))
    assert [b.num_rows for b in got] == [4, 4, 2]
    assert got[0].schema.names == ["caption_id"]
    assert list(store.batches("figures", ["figure_id"])) == []  # empty table: no batches
    vectors = np.eye(3, dtype="float32")
    store.write_embeddings("test", ["a", "b", "c"], vectors, model="m")
    (batch,) = store.batches("emb_test", ["item_id", "model"], "item_id != 'b'")
    assert sorted(batch.column("item_id").to_pylist()) == ["a", "c"]


def test_nearest_neighbours(store):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50, 8)).astype("float32")
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store.write_embeddings("test", [f"i{i}" for i in range(50)], vectors, model="m")
    store.write_embeddings("test", ["i0"], vectors[:1], model="m")  # upsert, not a duplicate
    assert store.embedding_table("test").count_rows() == 50
    hits = store.nearest("test", vectors[7], k=3)
    assert hits[0]["item_id"] == "i7"
    assert len(hits) == 3


def test_run_records_outcome(store):
    with record_run(store, "demo", config={"k": 1}) as run:
        run.add_count("items", 3)
    row = store.get("runs", run.run_id)
    assert row["status"] == "done"
    assert '"items": 3' in row["counts_json"]

    with pytest.raises(Cancelled), record_run(store, "demo") as cancelled:
        raise Cancelled("stop")
    assert store.get("runs", cancelled.run_id)["status"] == "cancelled"

    with pytest.raises(ZeroDivisionError), record_run(store, "demo") as failed:
        1 / 0  # noqa: B018
    row = store.get("runs", failed.run_id)
    assert row["status"] == "failed"
    assert "ZeroDivisionError" in row["message"]


def test_reopened_store_sees_rows(tmp_path):
    from store import open_store

    first = open_store(tmp_path / "s")
    first.insert_new("captions", [caption_row("f", "persisted")])
    second = open_store(tmp_path / "s")
    assert second.count("captions") == 1


def test_a_fresh_reader_sees_another_handles_writes(tmp_path):
    """The TUI opens its store with a freshness bound; a stage writing through another handle
    (as another process would) shows up without reopening. The default handle does not look."""
    from store import open_store

    writer = open_store(tmp_path / "s")
    fresh = open_store(tmp_path / "s", fresh_after_s=0)
    stale = open_store(tmp_path / "s")
    writer.insert_new("captions", [caption_row("fig1", "first")])
    assert fresh.count("captions") == 1 and stale.count("captions") == 1
    writer.insert_new("captions", [caption_row("fig1", "second")])
    assert fresh.count("captions") == 2
    assert stale.count("captions") == 1  # why the TUI does not use the default
    stale.refresh()
    assert stale.count("captions") == 2


def test_sigterm_leaves_a_cancelled_run_record_not_a_running_one(tmp_path):
    import signal
    import subprocess
    import sys

    code = (
        "import sys, time\n"
        "from microvqa_tui.cli import stop_on_sigterm\n"
        "from microvqa_tui.common.runs import record_run\n"
        "from store import open_store\n"
        "stop_on_sigterm()\n"
        "store = open_store(sys.argv[1])\n"
        "with record_run(store, 'slow'):\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "s")], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) != 0
    from store import open_store

    runs = open_store(tmp_path / "s").page("runs", limit=10)
    assert [(r["step"], r["status"], r["message"]) for r in runs] == [
        ("slow", "cancelled", "interrupted")
    ]


def test_reads_never_create_tables_and_writes_do(tmp_path):
    from store import open_store

    store = open_store(tmp_path / "s")
    assert store.count("figures") == 0 and store.rows("mcqs") == []
    assert store.table("captions").count_rows() == 0
    assert store.table_names() == []  # nothing written by reading
    store.insert_new("captions", [caption_row("f", "written")])
    assert store.table_names() == ["captions"]


def test_a_folder_that_is_not_a_store_is_refused(tmp_path):
    from microvqa_tui.errors import StoreError
    from store import open_store

    with pytest.raises(StoreError, match="does not exist"):
        open_store(tmp_path / "missing", create=False)
    assert not (tmp_path / "missing").exists()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file.txt").write_text("not a store")
    for create in (False, True):
        with pytest.raises(StoreError, match="not a microvqa store"):
            open_store(tmp_path / "other", create=create)
    assert [p.name for p in (tmp_path / "other").iterdir()] == ["file.txt"]
    open_store(tmp_path / "new").insert_new("captions", [caption_row("f", "x")])
    assert open_store(tmp_path / "new", create=False).count("captions") == 1


def _numbered_captions(store, n: int) -> list[dict]:
    rows = [caption_row(f"fig{i % 3}", f"caption {i:03d}") for i in range(n)]
    store.insert_new("captions", rows)
    return rows


def test_sorted_pages_follow_order_by_and_never_overlap(store):
    _numbered_captions(store, 30)
    order = ["-figure_id", "text"]
    first = store.page("captions", columns=["figure_id", "text"], order_by=order, limit=12)
    second = store.page(
        "captions", columns=["figure_id", "text"], order_by=order, offset=12, limit=100
    )
    pairs = [(r["figure_id"], r["text"]) for r in first + second]
    assert len(pairs) == 30 and len(set(pairs)) == 30
    assert pairs == sorted(pairs, key=lambda p: (-int(p[0][3:]), p[1]))
    sorted_rows = store.rows("captions", "figure_id = 'fig1'", ["text"], order_by=["-text"])
    texts = [r["text"] for r in sorted_rows]
    assert len(texts) == 10 and texts == sorted(texts, reverse=True)


def test_whole_column_and_arrow_reads_are_typed_even_when_empty(store):
    _numbered_captions(store, 6)
    assert sorted(store.column("captions", "text", "figure_id = 'fig2'")) == [
        "caption 002",
        "caption 005",
    ]
    empty = store.arrow("mcqs", columns=["mcq_id", "bloom_level"])
    wanted = store.schema("mcqs")
    assert empty.num_rows == 0 and empty.schema.names == ["mcq_id", "bloom_level"]
    assert empty.schema.field("bloom_level").type == wanted.field("bloom_level").type
    assert store.column("qas", "score") == [] and not (store.path / "qas.lance").exists()


def test_version_moves_with_every_write(store):
    assert store.version("captions") is None
    _numbered_captions(store, 2)
    before = store.version("captions")
    assert isinstance(before, int)
    store.update_where("captions", "figure_id = 'fig0'", {"source": "edited"})
    assert store.version("captions") > before


def test_embedding_tables_read_through_the_same_api(store):
    vectors = np.eye(4, dtype=np.float32)
    store.write_embeddings("test", ["a", "b", "c", "d"], vectors, model="m")
    assert store.schema("emb_test").field("vector").type.list_size == 4
    assert {r["item_id"] for r in store.get_many("emb_test", ["b", "d", "zz"], ["item_id"])} == {
        "b",
        "d",
    }
    assert store.ids("emb_test", "model = 'm'") == {"a", "b", "c", "d"}


# Modules still reaching through `Store.table()`/`embedding_table()` into LanceDB (issue 13
# moved the last ones onto the read API); the set may only shrink.
RAW_READERS_LEFT: set[str] = set()


def test_reads_outside_the_store_go_through_its_api():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    raw = re.compile(r"(?<!\bpa)\.(table|embedding_table)\(")
    found = {
        str(path.relative_to(root))
        for path in (root / "microvqa_tui").rglob("*.py")
        if raw.search(path.read_text(encoding="utf-8"))
    }
    assert found <= RAW_READERS_LEFT, sorted(found - RAW_READERS_LEFT)
