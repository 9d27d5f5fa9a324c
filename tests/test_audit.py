"""Auditing an existing QA / MCQ set: QA import, the graph's verdict on imported MCQs,
selection on them, `microvqa review` and the export of the result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile

import ingest_helpers as h
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from audit_helpers import audit_rows, write_audit_file
from graph_helpers import fast_run_settings, fast_settings, one_thread  # noqa: F401
from mcq_helpers import ScriptedLLM, prompt_field, shown_options

from microvqa_tui.common.funnel import funnel_rows
from microvqa_tui.errors import PipelineError
from microvqa_tui.ingest import ingest_source
from microvqa_tui.pipeline.export import export_dataset
from microvqa_tui.pipeline.graph.run import human_labels_from_store, run_graph
from microvqa_tui.pipeline.select import SelectSettings, run_select
from microvqa_tui.pipeline.signals import SignalSettings, run_signals
from microvqa_tui.services.review import Reviewer
from microvqa_tui.services.review_filter import ItemFilter
from store import open_store
from store.ids import content_id, text_id
from tests.model_helpers import minilm  # noqa: F401
from tests.stage_helpers import Provider, step_settings


def run_cli(*args: str, tmp_path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "MICROVQA_STORE": str(tmp_path / "store"),
        "MICROVQA_USER": "auditor",
    }
    return subprocess.run(
        [sys.executable, "-m", "microvqa_tui", *args], capture_output=True, text=True, env=env
    )


def cli_json(*args: str, tmp_path) -> dict:
    out = run_cli(*args, "--json", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def by_id(store, table: str) -> dict[str, dict]:
    key = {"qas": "qa_id", "mcqs": "mcq_id"}[table]
    return {r[key]: r for r in store.rows(table)}


# ---------------------------------------------------------------------------- QA import
def test_manifest_rows_with_question_and_answer_become_qas(store, tmp_path):
    (tmp_path / "img").mkdir()
    rows = [
        {"question": "Which stain?", "answer": "DAPI", "task_type": "hypothesis_generation"},
        {"question": "What is shown?", "answer": "Nuclei"},
        {},
        {"question": "A question without an answer?"},
    ]
    lines = []
    for i, extra in enumerate(rows):
        (tmp_path / "img" / f"{i}.png").write_bytes(h.image_bytes(100 + i))
        lines.append(json.dumps({"image": f"img/{i}.png", "caption": h.caption(i), **extra}))
    path = tmp_path / "qas.jsonl"
    path.write_text("\n".join(lines) + "\n")
    report = ingest_source(store, path, h.settings())
    assert (report.figures_new, report.captions_new, report.qas_new) == (4, 4, 2)
    qas = {r["question"]: r for r in store.rows("qas")}
    for i, (question, task) in enumerate(
        [("Which stain?", "hypothesis_generation"), ("What is shown?", "unknown")]
    ):
        fid = content_id(h.image_bytes(100 + i))
        qa = qas[question]
        assert qa["qa_id"] == text_id(fid, question, qa["answer"])
        assert (qa["figure_id"], qa["caption_id"]) == (fid, text_id(fid, h.caption(i)))
        assert (qa["task_type"], qa["origin"], qa["status"]) == (task, "imported", "pending")
    lone = store.get("figures", content_id(h.image_bytes(103)), ["meta_json"])
    assert json.loads(lone["meta_json"]) == {"question": "A question without an answer?"}


def test_parquet_and_webdataset_qa_rows_become_qas(store, tmp_path):
    columns = {
        "image": [h.image_struct(300 + i) for i in range(3)],
        "caption": [h.caption(300 + i) for i in range(3)],
        "question": [f"What is in panel {i}?" for i in range(3)],
        "answer": [f"Structure {i}" for i in range(3)],
        "task_str": ["experiment_proposal"] * 3,
    }
    types = {
        "image": h.IMAGE_STRUCT,
        **{k: pa.string() for k in ("caption", "question", "answer", "task_str")},
    }
    report = ingest_source(
        store, h.write_parquet(tmp_path / "qa.parquet", columns, types), h.settings()
    )
    assert report.qas_new == 3 and report.mcqs_new == 0
    shard = tmp_path / "qa.tar"
    with tarfile.open(shard, "w") as tf:
        meta = {"caption": h.caption(400), "question": "Which cells?", "answer": "Neurons"}
        h.tar_member(tf, "s0.png", h.image_bytes(400))
        h.tar_member(tf, "s0.json", json.dumps(meta).encode())
    assert ingest_source(store, shard, h.settings()).qas_new == 1
    qas = store.rows("qas")
    assert {q["task_type"] for q in qas} == {"experiment_proposal", "unknown"}
    assert all(q["caption_id"] and q["origin"] == "imported" for q in qas)


def test_an_imported_mcq_yields_its_qa_and_a_reingest_links_old_ones(store, tmp_path):
    path = h.write_microvqa_pp(tmp_path / "pp.parquet", 4, one_based=True, prefix="num")
    report = ingest_source(store, path, h.settings())
    assert (report.mcqs_new, report.qas_new) == (4, 4)
    qas = by_id(store, "qas")
    for mcq in store.rows("mcqs"):
        qa = qas[mcq["qa_id"]]
        assert (qa["question"], qa["answer"]) == (mcq["question"], mcq["correct_answer"])
        assert (qa["evidence"], qa["task_type"]) == (mcq["cot"], mcq["task_str"])
        assert qa["figure_id"] == mcq["figure_id"] and qa["origin"] == "imported"
        assert qa["caption_id"] == json.loads(mcq["params_json"])["caption_id"]
    # A store from before QA import: MCQs without QAs. The graph says what is there …
    store.table("qas").delete("true")
    store.update_where("mcqs", "true", {"qa_id": ""})
    with pytest.raises(PipelineError) as error:
        run_graph(store, fast_run_settings())
    assert "the store has 4 MCQs (4 imported), 4 figures, 4 captions and no QAs" in str(error.value)
    assert "ingest the same source again" in error.value.hint
    # … and ingesting the source again derives the QAs and links the MCQs to them.
    again = ingest_source(store, path, h.settings())
    assert (again.mcqs_new, again.qas_new) == (0, 4)
    assert {m["qa_id"] for m in store.rows("mcqs")} == set(by_id(store, "qas"))


# ---------------------------------------------------------------------------- the audit path
def shortcut_free_answerer(correct: dict[str, str]):
    """The image-free test answers wrongly (so nothing is flagged as a text shortcut)."""

    def answer(messages, schema, options):
        right = correct[prompt_field(messages, "Question")]
        shown = shown_options(messages)
        return {"answer": "ABCD"[next(i for i, o in enumerate(shown) if o != right)]}

    return answer


def review_from_the_cli(store, mcqs: dict[str, dict], tmp_path):
    """Reject one kept MCQ, rescue one held-out MCQ; the graph reads both as labels."""
    kept_id = min(m for m, r in mcqs.items() if r["status"] == "kept")
    held_id = min(m for m, r in mcqs.items() if r["status"] == "held_out")
    assert str(tmp_path / "store") == str(store.path)
    rejected = cli_json("review", "reject", kept_id, "--note", "wrong figure", tmp_path=tmp_path)
    assert (rejected["changed"], rejected["user"]) == (1, "auditor")
    dry = cli_json(
        "review", "accept", "--origin", "imported", "--status", "held_out", "--dry-run",
        tmp_path=tmp_path,
    )  # fmt: skip
    assert (dry["changed"], dry["matched"]) == (3, 3)
    assert cli_json("review", "accept", held_id, tmp_path=tmp_path)["changed"] == 1
    store = open_store(tmp_path / "store")
    decisions = store.rows("decisions")
    assert sorted((d["item_id"], d["action"], d["user"]) for d in decisions) == sorted(
        [(kept_id, "reject", "auditor"), (held_id, "accept", "auditor")]
    )
    mcqs = by_id(store, "mcqs")
    labels = human_labels_from_store(store)
    assert labels == {mcqs[kept_id]["qa_id"]: 0, mcqs[held_id]["qa_id"]: 1}
    return store


def test_audit_path_ingest_signals_graph_select_review_export(store, settings, tmp_path, minilm):  # noqa: F811
    planted = {1, 4, 7, 10}
    path = write_audit_file(tmp_path / "audit.parquet", 12, planted)
    ingest_source(store, path, h.settings())
    signals = step_settings(settings, signals=SignalSettings(families=["text"]))
    run_signals(store, signals, models=Provider(text=minilm))
    report = run_graph(store, fast_run_settings())  # keeps 9 of 12
    assert report.imported_mcqs == {"kept": 9, "held_out": 3}

    # Each MCQ takes its QA's verdict (how well the graph finds the planted items is
    # measured by benchmarks/audit.py, on a set large enough to say).
    qas = by_id(store, "qas")
    for mcq in store.rows("mcqs"):
        qa = qas[mcq["qa_id"]]
        assert mcq["status"] == qa["status"]
        assert json.loads(mcq["params_json"])["graph"]["verdict"] == qa["status"]
        if qa["status"] == "held_out":
            assert mcq["reason"] == f"graph_held_out: {qa['reason']}"
            assert qa["reason"].startswith(("graph_low_score: score ", "graph_at_cut: score "))
        else:
            assert mcq["reason"] == ""

    correct = {r["question"]: r["correct_answer"] for r in audit_rows(12, planted)}
    llm = ScriptedLLM(answer=shortcut_free_answerer(correct))
    chosen = run_select(
        store, settings.model_copy(update={"select": SelectSettings(difficulty=False)}), llm=llm
    )
    assert chosen.managed == 9 and chosen.kept == 9  # the graph's hold-outs are not checked
    mcqs = by_id(store, "mcqs")
    assert sorted(m["status"] for m in mcqs.values()) == ["held_out"] * 3 + ["kept"] * 9
    assert all(
        m["reason"].startswith("graph_held_out") == (m["status"] == "held_out")
        for m in mcqs.values()
    )
    funnel = {(r.stage, r.check, r.origin): r for r in funnel_rows(store)}
    graph = funnel[("graph", "consistency", "imported")]
    assert (graph.entered, graph.passed, graph.held_out) == (12, 9, 3)
    assert funnel[("select", "reasoning", "imported")].entered == 9

    store = review_from_the_cli(store, mcqs, tmp_path)
    out = export_dataset(store, tmp_path / "export", fmt="parquet")
    assert sum(out.splits.values()) == 9
    assert out.excluded == {"rejected": 1, "held_out": 2}


def test_review_accept_pending_then_export_keeps_the_original_keys(tmp_path):
    datasets = pytest.importorskip("datasets")
    path = write_audit_file(tmp_path / "pp.parquet", 10)
    assert cli_json("ingest", str(path), tmp_path=tmp_path)["mcqs_new"] == 10
    refused = run_cli("export", str(tmp_path / "none"), tmp_path=tmp_path)
    assert refused.returncode != 0
    assert "10 not curated (pending)" in refused.stderr and "--include-pending" in refused.stderr
    accepted = cli_json(
        "review", "accept", "--origin", "imported", "--status", "pending", tmp_path=tmp_path
    )
    assert accepted["changed"] == 10
    out = tmp_path / "export"
    report = cli_json("export", str(out), "--format", "parquet", tmp_path=tmp_path)
    assert sum(report["splits"].values()) == 10 and report["excluded"] == {}
    files = {s: str(out / f"data/{s}-00000-of-00001.parquet") for s in report["splits"]}
    loaded = datasets.load_dataset("parquet", data_files=files)
    assert type(loaded["train"].features["image"]).__name__ == "Image"
    source = {r["question"]: r for r in pq.read_table(path).to_pylist()}
    seen = 0
    for split in loaded.values():
        for row in split:
            original = source[row["question"]]
            for key in ("choices", "correct_index", "correct_answer", "cot", "task_str"):
                assert row[key] == original[key], key
            assert row["image_caption"] == original["image_caption"]
            assert row["image"].size == (320, 256)
            seen += 1
    assert seen == 10


def test_export_include_pending_and_what_it_left_out(store, tmp_path):
    ingest_source(store, write_audit_file(tmp_path / "pp.parquet", 6), h.settings())
    ids = sorted(by_id(store, "mcqs"))
    Reviewer(store, "auditor").reject("mcq", ids[0])
    report = export_dataset(store, tmp_path / "out", fmt="jsonl", include_pending=True)
    assert sum(report.splits.values()) == 5 and report.excluded == {"rejected": 1}
    assert "pending (not rejected)" in report.selection_rule


# ---------------------------------------------------------------------------- review service
def test_item_filters_and_undo_per_item(store, tmp_path):
    ingest_source(store, write_audit_file(tmp_path / "pp.parquet", 6), h.settings())
    reviewer = Reviewer(store, "auditor")
    where = ItemFilter(status="pending", origin="imported", task="hypothesis_generation").where(
        "mcq"
    )
    ids = [r["mcq_id"] for r in store.rows("mcqs", where)]
    assert len(ids) == 2  # rows 1 and 4
    assert ItemFilter(origin="generated").where("mcq") == "origin != 'imported'"
    dry = reviewer.bulk("mcq", "accept", where=None, ids=ids, dry_run=True)
    assert dry.changed == 2 and store.count("decisions") == 0
    reviewer.bulk("mcq", "accept", ids=ids)
    reviewer.reject("mcq", ids[0])
    undone = reviewer.undo_items("mcq", ids)  # each item's latest standing decision
    assert sorted((r.item_id, r.action) for r in undone) == sorted(
        [(ids[0], "reject"), (ids[1], "accept")]
    )
    reviews = {m["mcq_id"]: m["review"] for m in store.rows("mcqs")}
    assert (reviews[ids[0]], reviews[ids[1]]) == ("accepted", "unreviewed")
    assert store.count("decisions") == 5  # 2 accepts, 1 reject, 2 undos: nothing rewritten


def test_review_cli_choices_match_the_store_schema():
    from microvqa_tui import cli_review
    from microvqa_tui import vocabulary as schema

    assert {s.value for s in cli_review.Status} == {
        schema.STATUS_PENDING,
        schema.STATUS_KEPT,
        schema.STATUS_HELD_OUT,
        schema.STATUS_FLAGGED,
    }
    assert schema.ORIGIN_IMPORTED in {o.value for o in cli_review.Origin}
    assert {r.value for r in cli_review.ReviewState} - {"any"} == {
        schema.REVIEW_UNREVIEWED,
        schema.REVIEW_ACCEPTED,
        schema.REVIEW_REJECTED,
    }
