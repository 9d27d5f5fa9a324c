"""Stage 3 and selection on the real offline model (SmolLM2-135M-Instruct GGUF, llama.cpp).

The model is weak, so these tests check what must hold whatever it writes: every QA ends
as an MCQ in the MicroVQA++ layout or in quarantine with a reason and the raw output, model
calls stay within the bounds, and every MCQ leaves selection kept, held out or flagged with
its reason and its measures. Kept small: two QAs, two attempts, k = 2.
"""

from __future__ import annotations

import json

import pytest
from mcq_helpers import all_mcqs, quarantine_rows

from microvqa_tui.common.funnel import funnel_rows
from microvqa_tui.pipeline.select import SelectSettings, run_select
from microvqa_tui.pipeline.stage3 import MCQSettings, run_mcq
from microvqa_tui.pipeline.stage3.layout import microvqa_records
from store import open_store, text_id
from store.schema import utcnow

pytestmark = pytest.mark.slow

CAPTION = (
    "Architecture of the epidermis in H&E-stained skin. A basal layer of small, crowded cells "
    "with dark nuclei rests on the dermis, cells become larger and paler through the spinous "
    "layer, and a thin darker granular layer lies beneath the anucleate, basket-weave stratum "
    "corneum. Scale bar, 50 µm."
)
QAS = [
    (
        "Which epidermal layer is made of small, crowded cells with dark nuclei?",
        "The basal layer",
        "expert_visual_understanding",
    ),
    (
        "Why do the cells become larger and paler towards the surface?",
        "They differentiate as they move up from the basal layer",
        "hypothesis_generation",
    ),
]


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    from microvqa_tui.config import load_settings
    from microvqa_tui.models.registry import get_llm as resolve_llm

    root = tmp_path_factory.mktemp("real")
    settings = load_settings(
        store=root / "store",
        # one thread: llama.cpp degrades badly on a busy 2-core machine with two
        models={"llm_timeout_s": 40, "llm_context": 2048, "llm_threads": 1},
    )
    settings = settings.model_copy(
        update={
            "mcq": MCQSettings(max_attempts=2, max_tokens=320),
            "select": SelectSettings(
                image_free_attempts=2, difficulty_attempts=2, rewrite_rounds=1
            ),
        }
    )
    store = open_store(settings.store)
    figure_id = "fig-skin"
    caption_id = text_id(figure_id, CAPTION)
    store.insert_new(
        "captions",
        [
            {
                "caption_id": caption_id,
                "figure_id": figure_id,
                "text": CAPTION,
                "created_at": utcnow(),
            }
        ],
    )
    qas = [
        {
            "qa_id": text_id(figure_id, q, a),
            "figure_id": figure_id,
            "caption_id": caption_id,
            "question": q,
            "answer": a,
            "task_type": t,
            "origin": "stage1",
            "status": "kept",
            "created_at": utcnow(),
        }
        for q, a, t in QAS
    ]
    store.insert_new("qas", qas)
    llm = resolve_llm(settings)
    mcq_report = run_mcq(store, settings, llm=llm)
    return store, settings, llm, qas, mcq_report


def test_real_model_mcqs_or_quarantine_with_reasons(real):
    store, _, _, qas, report = real
    assert "SmolLM2" in report.model
    # Bounded: at most max_attempts model calls per QA, one call per attempt.
    assert report.llm["calls"] == report.attempts <= 2 * len(qas)
    assert report.generated + report.held_out == len(qas)
    by_qa = {m["qa_id"]: m for m in all_mcqs(store)}
    quarantined = quarantine_rows(store)
    for row in quarantined:
        assert row["reason"] and row["detail"]  # every rejection says why
    for qa in qas:
        mcq = by_qa.get(qa["qa_id"])
        if mcq is None:
            assert any(r["source"] == qa["qa_id"] for r in quarantined)
            continue
        choices = mcq["choices"]
        assert len(choices) == 4 and len({c.lower() for c in choices}) == 4
        assert choices[mcq["correct_index"]] == mcq["correct_answer"] == qa["answer"]  # pinned
        assert mcq["cot"].startswith("Observation: ")
        assert mcq["task_str"] == qa["task_type"]
    assert report.tokens_per_second > 0 and report.llm["completion_tokens"] > 0


def test_real_model_selection_leaves_every_item_decided(real):
    store, settings, llm, _, _ = real
    report = run_select(store, settings, llm=llm)
    records = microvqa_records(store)
    assert report.checked == len(records)
    for record in records:
        assert record["image_caption"] == CAPTION
        assert record["status"] in ("kept", "held_out", "flagged")
        if record["status"] != "kept":
            assert record["reason"]
        if not record["reason"].startswith("cot_"):
            assert 1 <= record["bloom_level"] <= 6
            assert record["image_free_pass_rate"] is not None
            assert record["difficulty_tier"] in ("never", "sometimes", "always")
    calls = report.llm["calls_by_purpose"]
    assert calls.get("cot", 0) <= len(records)  # one regeneration per item at most
    assert calls.get("rewrite", 0) <= len(records)  # rewrite_rounds = 1
    funnel = funnel_rows(store)
    assert [r.stage for r in funnel] == [
        "stage1",
        "mcq",
        "mcq",
        "select",
        "select",
        "select",
        "select",
        "select",
    ]
    run = store.get("runs", report.run_id)
    assert json.loads(run["counts_json"])["selection_policy"]["policy"] == "keep_all"
