"""Splits without leakage, the three export formats, the card, path safety, overwrite."""

from __future__ import annotations

import io
import json
import os
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest
from dataset_helpers import build_dataset, encode, figure_row, mcq_row, textured_image
from PIL import Image

from microvqa_tui.config import load_settings
from microvqa_tui.errors import ExportError
from microvqa_tui.pipeline.dedup import core as dedup_core
from microvqa_tui.pipeline.dedup import decide_groups, list_groups, run_dedup
from microvqa_tui.pipeline.export import (
    export_dataset,
    image_names,
    safe_filename,
    safe_path,
    select_mcqs,
)
from microvqa_tui.pipeline.splits import SplitItem, assign_splits, leakage_report, parse_fractions
from microvqa_tui.vocabulary import TASK_TYPES


@pytest.fixture(autouse=True)
def tfidf_only(monkeypatch):
    """These tests are about splits and files: text dedup on the fast TF-IDF backend."""

    def missing(_settings):
        from microvqa_tui.errors import ModelMissingError

        raise ModelMissingError("not needed here")

    monkeypatch.setattr(dedup_core, "load_text_encoder", missing)


# ---------------------------------------------------------------------------- splits
def _synthetic_items(n=600, seed=0):
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        article = f"PMC{i // 3}"  # three questions per article
        figure = f"fig{i // 2}"  # two questions per figure
        items.append(
            SplitItem(
                f"q{i}",
                [figure],
                [article],
                TASK_TYPES[int(rng.integers(3))],
                int(rng.integers(1, 5)),
            )
        )
    groups = [
        [f"fig{a}", f"fig{a + 97}"] for a in range(0, 200, 7)
    ]  # image dup groups across articles
    groups += [[f"q{a}", f"q{a + 301}"] for a in range(0, 250, 11)]  # question dup groups
    return items, groups


def test_splits_never_cross_groups_or_articles_and_keep_strata():
    items, groups = _synthetic_items()
    fractions = parse_fractions("0.8,0.1,0.1")
    assignment = assign_splits(items, fractions, seed=3, groups=groups)
    report = leakage_report(
        items, assignment, groups={"image": groups[:29], "question": groups[29:]}
    )
    assert report["cross_split_groups"] == 0
    assert report["cross_split_articles"] == 0
    assert report["cross_split_figures"] == 0
    sizes = Counter(assignment.values())
    assert abs(sizes["train"] / len(items) - 0.8) < 0.05
    assert abs(sizes["validation"] / len(items) - 0.1) < 0.04
    tasks = report["task_by_split"]
    for split in ("train", "validation", "test"):  # stratified: each split has each task
        assert set(tasks[split]) == set(TASK_TYPES)
    assert report["stratification_max_deviation"] < 0.1
    # deterministic for a seed, different for another
    assert assign_splits(items, fractions, seed=3, groups=groups) == assignment
    assert assign_splits(items, fractions, seed=4, groups=groups) != assignment


def test_few_components_fill_the_larger_splits_first():
    # Two inseparable blocks (e.g. spatial items of one source figure each): the larger goes
    # to train on every seed, never to a random split that leaves train empty.
    items = [SplitItem(f"a{i}", ["figA"], ["PMC1"], TASK_TYPES[0], 1) for i in range(24)]
    items += [SplitItem(f"b{i}", ["figB"], ["PMC2"], TASK_TYPES[0], 1) for i in range(16)]
    for seed in range(6):
        assignment = assign_splits(items, parse_fractions("0.8,0.1,0.1"), seed=seed)
        assert {assignment[f"a{i}"] for i in range(24)} == {"train"}
        assert {assignment[f"b{i}"] for i in range(16)} != {"train"}  # train is already full


def test_parse_fractions():
    assert parse_fractions("80,10,10") == {"train": 0.8, "validation": 0.1, "test": 0.1}
    assert parse_fractions("1") == {"train": 1.0}
    with pytest.raises(Exception, match="bad split"):
        parse_fractions("0.5,x")


# ---------------------------------------------------------------------------- export
@pytest.fixture(scope="module")
def curated_template(tmp_path_factory):
    """One curated store per module (built and deduplicated once), copied for each test."""
    from store import open_store

    folder = tmp_path_factory.mktemp("curated") / "store"
    template = open_store(folder)
    build_dataset(template, n_topics=12)
    run_dedup(template, load_settings(), text_backend="tfidf")
    return folder


@pytest.fixture
def store(curated_template, tmp_path):
    import shutil

    from store import open_store

    shutil.copytree(curated_template, tmp_path / "store")
    return open_store(tmp_path / "store")


@pytest.fixture
def curated(store):
    return store


@pytest.fixture
def empty_store(tmp_path):
    from store import open_store

    return open_store(tmp_path / "empty-store")


def test_parquet_export_round_trips_through_pyarrow_and_datasets(store, curated, tmp_path):
    out = tmp_path / "export"
    report = export_dataset(store, out, fmt="parquet", fractions="0.6,0.2,0.2", seed=1)
    assert report.leakage["cross_split_groups"] == 0 and report.leakage["cross_split_articles"] == 0
    total = sum(report.splits.values())
    assert total == len(select_mcqs(store).mcqs) == store.count("mcqs")
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == sorted(report.files)
    # pyarrow: the MicroVQA++ columns, HF metadata, image structs with bytes
    table = pq.read_table(out / "data/train-00000-of-00001.parquet")
    for column in (
        "image_name",
        "image",
        "question",
        "choices",
        "correct_index",
        "correct_answer",
        "cot",
        "task_str",
        "image_caption",
        "images_source",
        "bloom_level",
        "difficulty_tier",
        "family",
        "split",
    ):
        assert column in table.column_names
    assert json.loads(table.schema.metadata[b"huggingface"])["info"]["features"]["image"] == {
        "_type": "Image"
    }
    row = table.slice(0, 1).to_pylist()[0]
    Image.open(io.BytesIO(row["image"]["bytes"])).verify()
    assert row["choices"][row["correct_index"]] == row["correct_answer"]
    assert row["image"]["path"] == row["image_name"]
    # datasets: images decode as PIL images
    datasets = pytest.importorskip("datasets")
    data_files = {s: str(out / f"data/{s}-00000-of-00001.parquet") for s in report.splits}
    loaded = datasets.load_dataset("parquet", data_files=data_files)
    assert {s: len(loaded[s]) for s in loaded} == report.splits
    assert type(loaded["train"].features["image"]).__name__ == "Image"
    first = loaded["train"][0]
    assert first["image"].size[0] > 0 and first["extra_images"] == []
    # every exported question sits in exactly one split; groups stay together
    split_of = {}
    for s in report.splits:
        for mcq_id in (
            pq.read_table(out / f"data/{s}-00000-of-00001.parquet", columns=["mcq_id"])
            .column(0)
            .to_pylist()
        ):
            assert mcq_id not in split_of
            split_of[mcq_id] = s
    mcq_fig = {
        m["mcq_id"]: m["figure_id"]
        for m in store.page("mcqs", columns=["mcq_id", "figure_id"], limit=1000)
    }
    for group in list_groups(store, kind="image"):
        splits = {split_of[m] for m, f in mcq_fig.items() if f in group["member_ids"]}
        assert len(splits) == 1
    # the dataset card
    card = (out / "README.md").read_text()
    for heading in (
        "## Counts and splits",
        "## Leakage",
        "## Curation funnel",
        "## Task types",
        "## Bloom levels",
        "## Models and prompts",
        "## Sources, licences and attributions",
    ):
        assert heading in card
    assert "path: data/train-*.parquet" in card and "CC-BY-4.0" in card and "dedup" in card
    manifest = json.loads((out / "export.json").read_text())
    assert (
        manifest["run_id"] == report.run_id and store.get("runs", report.run_id)["status"] == "done"
    )


def test_parquet_export_reingests_through_our_ingest(store, curated, tmp_path, settings):
    from microvqa_tui import ingest

    out = tmp_path / "export"
    report = export_dataset(store, out, fmt="parquet", fractions="1")
    from store import open_store

    again = open_store(tmp_path / "again")
    result = ingest.ingest_source(again, out / "data/train-00000-of-00001.parquet", settings.ingest)
    assert result.mcqs_new == report.splits["train"]
    assert again.count("figures") == report.images
    original = {(m["question"], m["correct_answer"]) for m in select_mcqs(store).mcqs}
    back = {
        (m["question"], m["correct_answer"])
        for m in again.page("mcqs", columns=["question", "correct_answer"], limit=1000)
    }
    assert back == original


def test_jsonl_and_llava_exports(store, curated, tmp_path):
    for fmt in ("jsonl", "llava"):
        out = tmp_path / fmt
        report = export_dataset(store, out, fmt=fmt, fractions="0.7,0.3")
        assert set(report.splits) == {"train", "validation"}
        images = {p.name for p in (out / "images").iterdir()}
        assert len(images) == report.images
        if fmt == "jsonl":
            rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
            assert all((out / r["image"]).is_file() for r in rows)
            assert all(r["choices"][r["correct_index"]] == r["correct_answer"] for r in rows)
        else:
            convs = json.loads((out / "llava_train.json").read_text())
            assert len(convs) == report.splits["train"]
            human, gpt = convs[0]["conversations"]
            assert (
                human["from"] == "human"
                and human["value"].startswith("<image>\n")
                and "(A) " in human["value"]
            )
            assert gpt["from"] == "gpt" and "Answer: (" in gpt["value"]
            assert (out / convs[0]["image"]).is_file()


def test_selection_rule_and_resolved_duplicates(empty_store, tmp_path):
    store = empty_store
    figs = [figure_row(encode(textured_image(300 + i)), article_id=f"A{i}") for i in range(6)]
    store.insert_new("figures", figs)
    states = [
        ("accepted", "pending"),
        ("unreviewed", "kept"),
        ("rejected", "kept"),
        ("unreviewed", "flagged"),
        ("unreviewed", "held_out"),
        ("unreviewed", "pending"),
    ]
    rows = [
        mcq_row(f["figure_id"], f"Question {i}?", ["a", "b", "c"], 1, review=r, status=s)
        for i, (f, (r, s)) in enumerate(zip(figs, states, strict=True))
    ]
    store.insert_new("mcqs", rows)
    assert {m["question"] for m in select_mcqs(store).mcqs} == {"Question 0?", "Question 1?"}
    both = select_mcqs(store, include_flagged=True, include_held_out=True)
    assert {m["question"] for m in both.mcqs} == {
        "Question 0?",
        "Question 1?",
        "Question 3?",
        "Question 4?",
    }
    assert both.excluded["rejected"] == 1
    # a resolved image group removes the non-keeper figure's questions
    copy = figure_row(encode(textured_image(300).resize((160, 128))), article_id="B")
    store.insert_new("figures", [copy])
    store.insert_new("mcqs", [mcq_row(copy["figure_id"], "Question copy?", ["a", "b"], 0)])
    run_dedup(store, load_settings(), kinds=["image"])
    group = list_groups(store, kind="image")[0]
    assert group["keeper_id"] == figs[0]["figure_id"]
    decide_groups(store, [group["group_id"]], "resolve", user="ana")
    selection = select_mcqs(store)
    assert "Question copy?" not in {m["question"] for m in selection.mcqs}
    assert selection.excluded["duplicate image"] == 1


# ---------------------------------------------------------------------------- safety
@pytest.mark.parametrize(
    "name",
    [
        "../../etc/x.png",
        "/etc/passwd",
        "C:\\Windows\\evil.png",
        "..",
        ".",
        "",
        "a/../../b.png",
        "CON.png",
        "x" * 400 + ".png",
        "ok name (1).tif",
    ],
)
def test_safe_filename_is_a_plain_base_name(name):
    safe = safe_filename(name, "fallback")
    assert safe and "/" not in safe and "\\" not in safe and safe not in (".", "..")
    assert not safe.startswith(".") and len(safe) <= 120
    assert safe.upper() != "CON.PNG"


def test_safe_path_refuses_escapes(tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    for bad in ("../x", "/etc/x.png", "images/../../x", "C:/x"):
        with pytest.raises(ExportError):
            safe_path(root, bad)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, root / "images")
    with pytest.raises(ExportError):
        safe_path(root, "images/x.png")


def test_hostile_image_names_stay_inside_the_export(empty_store, tmp_path):
    store = empty_store
    hostile = ["../../etc/x.png", "/etc/passwd", "..\\..\\win.png", "../../etc/x.png"]
    figs = [
        figure_row(encode(textured_image(400 + i)), image_path=p, original_id=p, article_id=f"A{i}")
        for i, p in enumerate(hostile)
    ]
    store.insert_new("figures", figs)
    store.insert_new(
        "mcqs", [mcq_row(f["figure_id"], f"Q{i}?", ["a", "b"], 0) for i, f in enumerate(figs)]
    )
    names = image_names({f["figure_id"]: f for f in figs})
    assert len(set(names.values())) == len(figs)  # clashing names made unique
    out = tmp_path / "box" / "export"
    export_dataset(store, out, fmt="jsonl", fractions="1")
    written = [p for p in (tmp_path).rglob("*") if p.is_file()]
    assert all(
        p.resolve().is_relative_to(out.resolve()) or "empty-store" in p.parts for p in written
    )
    assert not (tmp_path / "etc").exists() and not (tmp_path / "box" / "etc").exists()
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(names.values())


def test_existing_export_needs_overwrite_and_keeps_other_files(store, curated, tmp_path):
    out = tmp_path / "export"
    first = export_dataset(store, out, fmt="jsonl")
    (out / "notes.txt").write_text("mine")
    (out / "images" / "mine.png").write_bytes(b"a person's own file")
    with pytest.raises(ExportError, match="overwrite"):
        export_dataset(store, out, fmt="parquet")
    second = export_dataset(store, out, fmt="parquet", overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"
    # The old export's files are gone; a file it did not write stays where it was.
    assert sorted(p.name for p in (out / "images").iterdir()) == ["mine.png"]
    assert not (out / "train.jsonl").exists()
    assert sum(second.splits.values()) == sum(first.splits.values())
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["complete"] and "notes.txt" not in manifest["files"]
    assert all((out / f).is_file() for f in manifest["files"])


def _snapshot(folder):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() if p.is_file() else None
        for p in sorted(folder.rglob("*"))
    }


def test_overwrite_refuses_a_folder_that_is_not_an_export(store, curated, tmp_path):
    out = tmp_path / "mine"
    (out / "data").mkdir(parents=True)
    (out / "data" / "results.csv").write_text("a,b\n1,2\n")
    (out / "images").mkdir()
    (out / "images" / "cell.png").write_bytes(b"precious")
    (out / "README.md").write_text("my notes")
    before = _snapshot(out)
    with pytest.raises(ExportError, match="holds no export of ours"):
        export_dataset(store, out, fmt="jsonl", overwrite=True)
    (out / "export.json").write_text(json.dumps({"tool": "other", "files": ["README.md"]}))
    before = _snapshot(out)
    with pytest.raises(ExportError, match="holds no export of ours"):
        export_dataset(store, out, fmt="jsonl", overwrite=True)
    assert _snapshot(out) == before


def test_overwrite_refuses_a_folder_inside_the_store(store, curated, tmp_path):
    captions = store.count("captions")
    table_dir = store.path / "captions.lance"
    before = _snapshot(table_dir)
    for out in (table_dir, store.path / "new-folder", store.path):
        with pytest.raises(ExportError, match="inside the store"):
            export_dataset(store, out, fmt="jsonl", overwrite=True)
    assert _snapshot(table_dir) == before and not (store.path / "new-folder").exists()
    store.refresh()
    assert store.count("captions") == captions
    assert len(store.rows("captions", columns=["caption_id"])) == captions


def test_overwrite_never_replaces_a_file_the_old_export_did_not_write(store, curated, tmp_path):
    out = tmp_path / "export"
    export_dataset(store, out, fmt="parquet")
    (out / "train.jsonl").write_text("a person's own split")
    with pytest.raises(ExportError, match=r"train\.jsonl"):
        export_dataset(store, out, fmt="jsonl", overwrite=True)
    assert (out / "train.jsonl").read_text() == "a person's own split"


def test_an_interrupted_export_can_be_overwritten(store, curated, tmp_path):
    """A killed export leaves its early manifest (planned files) and some files; the next
    `--overwrite` recognises the folder and clears exactly those files."""
    from microvqa_tui.pipeline.export import prepare_out_dir

    out = tmp_path / "export"
    prepare_out_dir(out, overwrite=False, planned=["train.jsonl", "images/a.png", "README.md"])
    (out / "images").mkdir()
    (out / "images" / "a.png").write_bytes(b"half")
    (out / ".train.jsonl.partial").write_text("{")
    report = export_dataset(store, out, fmt="parquet", overwrite=True)
    assert not (out / "images").exists() and not (out / ".train.jsonl.partial").exists()
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "data", "export.json"]
    assert sum(report.splits.values()) > 0


def test_nothing_to_export_is_an_error(empty_store, tmp_path):
    with pytest.raises(ExportError, match="nothing to export"):
        export_dataset(empty_store, tmp_path / "empty")
    assert not (tmp_path / "empty").exists()


def test_cli_dedup_and_export_json(store, curated, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import microvqa_tui.cli_dataset  # noqa: F401 - registers the commands
    from microvqa_tui.cli import app

    monkeypatch.setenv("MICROVQA_STORE", str(store.path))
    runner = CliRunner()
    result = runner.invoke(app, ["dedup", "--kind", "image", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["kinds"]["image"]["groups"] == 2
    result = runner.invoke(app, ["dedup", "groups", "--kind", "image", "--json"])
    groups = json.loads(result.stdout)["groups"]
    result = runner.invoke(
        app, ["dedup", "decide", groups[0]["group_id"], "--action", "resolve", "--json"]
    )
    assert json.loads(result.stdout)["resolved"] == 1
    result = runner.invoke(
        app,
        [
            "export",
            str(tmp_path / "cli"),
            "--format",
            "parquet",
            "--split",
            "0.8,0.1,0.1",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (
        report["leakage"]["cross_split_groups"] == 0 and report["excluded"]["duplicate image"] == 5
    )
