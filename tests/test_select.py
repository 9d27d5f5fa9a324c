"""Selection with scripted fakes: reasoning checks, Bloom rule, shortcut removal, difficulty,
policies, the funnel and the run record."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from mcq_helpers import (
    ANSWERS,
    ScriptedLLM,
    add_qas,
    all_mcqs,
    correct_letter_answerer,
    wrong_letter_answerer,
)

from microvqa_tui.common.funnel import funnel_rows
from microvqa_tui.pipeline.select import SelectSettings, run_select
from microvqa_tui.pipeline.select.bloom import combine, parse_llm, rule_level
from microvqa_tui.pipeline.select.difficulty import apply_policy, tier
from microvqa_tui.pipeline.select.reasoning import check_cot
from microvqa_tui.pipeline.stage3 import run_mcq
from store.schema import utcnow
from tests.stage_helpers import step_settings

CHOICES = ["Basal layer", "Granular layer", "Spinous layer", "Stratum corneum"]
GOOD_COT = (
    "Observation: a row of small crowded cells with dark nuclei rests on the dermis. "
    "Reasoning: the layer that sits directly on the dermis is the basal layer.\n"
    "Answer: (A) Basal layer"
)


def with_select(settings, **values):
    return step_settings(settings, select=SelectSettings(**values))


def reasons(cot: str, correct: int = 0, **values) -> list[str]:
    return [f.reason for f in check_cot(cot, CHOICES, correct, SelectSettings(**values))]


# ---------------------------------------------------------------------------- reasoning checks
def test_a_good_cot_passes_every_check():
    assert reasons(GOOD_COT) == []


def test_each_reasoning_check_fires_on_a_crafted_cot():
    assert reasons("Observation: cells. Reasoning: basal. Answer: (A) Basal layer") == [
        "cot_length"
    ]
    long_cot = GOOD_COT.replace("Reasoning:", "Reasoning: " + " ".join(f"w{i}" for i in range(400)))
    assert reasons(long_cot) == ["cot_length"]
    no_observation = GOOD_COT.replace("Observation:", "Looking:")
    assert reasons(no_observation) == ["cot_structure"]
    swapped = (
        "Reasoning: the layer on the dermis is basal, as the cells are small and crowded. "
        "Observation: small dark cells rest on the dermis.\nAnswer: (A) Basal layer"
    )
    assert reasons(swapped) == ["cot_structure"]
    no_answer = GOOD_COT.rsplit("\n", 1)[0]
    assert reasons(no_answer) == ["cot_structure"]
    loop = GOOD_COT.replace("Reasoning:", "Reasoning: " + "the cells are small " * 6 + "so")
    assert reasons(loop) == ["cot_repetition"]
    other = GOOD_COT.replace("Answer: (A) Basal layer", "Answer: (C) Spinous layer")
    assert reasons(other) == ["cot_answer"]
    nothing = GOOD_COT.replace("Answer: (A) Basal layer", "Answer: mitochondria")
    assert reasons(nothing) == ["cot_answer"]
    # Thresholds come from the settings.
    assert reasons(loop, max_ngram_repeats=10) == []
    assert reasons(no_observation, cot_required_parts=["Reasoning"]) == []


# ---------------------------------------------------------------------------- Bloom
@pytest.mark.parametrize(
    ("stem", "level"),
    [
        ("Which stain colours the nuclei blue?", 1),
        ("Identify the organelle marked by the arrow.", 1),
        ("What does the pale staining of the spinous layer indicate?", 2),
        ("Describe the arrangement of the collagen bundles.", 2),
        ("Given the scale bar, estimate the diameter of the labelled cell.", 3),
        ("Predict how the tissue would look after colchicine treatment.", 3),
        ("Why do the nevus cells lie apart from the epidermis?", 4),
        ("Compare the nuclei of the basal and the spinous cells.", 4),
        ("Which experiment would test whether these cells are proliferating?", 5),
        ("Propose a staining protocol to separate the two cell types.", 5),
        ("Which interpretation of the staining pattern is best supported?", 6),
        ("Evaluate whether the vessel density indicates inflammation.", 6),
    ],
)
def test_bloom_rule_levels_on_crafted_stems(stem, level):
    assert rule_level(stem)[0] == level


def test_bloom_rule_falls_back_to_the_task_type():
    assert rule_level("The structures seen here are?", "experiment_proposal")[0] == 5
    assert rule_level("The structures seen here are?", "hypothesis_generation")[0] == 4
    level, cue, confidence = rule_level("The structures seen here are?")
    assert (level, cue) == (2, "default") and confidence < 0.5


def test_bloom_combine_cross_checks_llm_and_rule():
    agree = combine("Why do the cells lie apart?", "", (4, 0.9))
    assert (agree.level, agree.source, agree.confidence, agree.notes) == (4, "llm", 0.9, [])
    disagree = combine("Which stain colours the nuclei?", "", (5, 0.8), penalty=0.5)
    assert disagree.level == 5 and disagree.confidence == pytest.approx(0.4)
    assert "differ by 4" in disagree.notes[0]
    fallback = combine("Which stain colours the nuclei?", "", None)
    assert (fallback.level, fallback.source) == (1, "rule")
    assert parse_llm({"level": "3", "confidence": 80}) == (3, 0.8)
    assert parse_llm({"level": 9, "confidence": 0.5}) is None
    assert parse_llm(["not", "a", "dict"]) is None


# ---------------------------------------------------------------------------- policies
def test_tiers_and_selection_policies_give_the_stated_counts():
    cfg = SelectSettings()
    assert [tier(r, cfg) for r in (0.0, 0.4, 1.0, None)] == ["never", "sometimes", "always", ""]
    rates = {
        f"m{i:02d}": r for i, r in enumerate([0.0, 0.0, 0.2, 0.4, 0.4, 0.6, 0.8, 1.0, 1.0, 1.0])
    }
    keep_all = apply_policy(rates, SelectSettings(policy="keep_all"))
    assert keep_all.counts() == {"policy": "keep_all", "entered": 10, "kept": 10, "held_out": 0}
    drop = apply_policy(rates, SelectSettings(policy="drop_always"))
    assert drop.counts()["kept"] == 7 and drop.counts()["held_out"] == 3
    assert set(drop.held_out) == {"m07", "m08", "m09"}
    hardest = apply_policy(rates, SelectSettings(policy="hardest", hardest_fraction=0.3))
    assert hardest.counts() == {
        "policy": "hardest",
        "entered": 10,
        "kept": 3,
        "held_out": 7,
        "hardest_fraction": 0.3,
    }
    assert set(hardest.kept) == {"m00", "m01", "m02"}
    # Ties at the cut are broken by a seeded hash, the same every time.
    tied = {f"t{i}": 0.5 for i in range(10)}
    cut = SelectSettings(policy="hardest", hardest_fraction=0.5)
    assert apply_policy(tied, cut).kept == apply_policy(tied, cut).kept
    assert len(apply_policy(tied, cut).kept) == 5


# ---------------------------------------------------------------------------- the step
def make_mcqs(store, settings, n=8):
    add_qas(store, n)
    run_mcq(store, settings, llm=ScriptedLLM())


def test_select_stores_measures_and_funnel(store, settings):
    make_mcqs(store, settings, 8)
    llm = ScriptedLLM(answer=wrong_letter_answerer)
    cfg = with_select(settings, image_free_attempts=3, difficulty_attempts=4)
    report = run_select(store, cfg, llm=llm)
    assert report.checked == 8 and report.kept == 8
    assert llm.counts() == Counter({"answer": 8 * 3 + 8 * 4, "bloom": 8})
    for mcq in all_mcqs(store):
        assert mcq["status"] == "kept"
        assert mcq["image_free_pass_rate"] == 0.0
        assert mcq["pass_rate"] == 0.0 and mcq["difficulty_tier"] == "never"
        assert mcq["bloom_level"] in range(1, 7) and 0 <= mcq["bloom_confidence"] <= 1
        select = json.loads(mcq["params_json"])["select"]
        assert select["outcome"] == "survivor" and select["bloom"]["source"] == "llm"
    run = store.get("runs", report.run_id)
    counts = json.loads(run["counts_json"])
    assert [row["check"] for row in counts["funnel"]] == [
        "reasoning",
        "shortcut",
        "bloom",
        "difficulty",
        "policy:keep_all",
    ]
    assert counts["selection_policy"] == {
        "policy": "keep_all",
        "entered": 8,
        "kept": 8,
        "held_out": 0,
    }
    assert sum(report.bloom.values()) == 8
    # The CLI/TUI funnel joins stage 1 (counted from the store), the MCQ and selection runs.
    assert [(r.stage, r.check) for r in funnel_rows(store)][:4] == [
        ("stage1", "generation"),
        ("mcq", "generation"),
        ("mcq", "attempts"),
        ("select", "reasoning"),
    ]


def test_shortcut_rewrites_are_bounded_and_answerable_items_flagged(store, settings):
    make_mcqs(store, settings, 3)
    llm = ScriptedLLM(answer=correct_letter_answerer)
    cfg = with_select(
        settings, image_free_attempts=4, rewrite_rounds=2, difficulty=False, bloom=False
    )
    report = run_select(store, cfg, llm=llm)
    # Per item: 4 image-free answers, then per round 1 rewrite + 1 check + 4 answers.
    assert llm.counts() == Counter({"answer": 3 * (4 + 2 * 4), "rewrite": 6, "check": 6})
    # No rewrite did better than the original, so the original wording stays.
    assert report.flagged == 3 and report.rewritten == 0
    for mcq in all_mcqs(store):
        assert mcq["status"] == "flagged"
        assert mcq["reason"].startswith("image_free_answerable")
        assert mcq["image_free_pass_rate"] == 1.0
        shortcut = json.loads(mcq["params_json"])["select"]["shortcut"]
        assert len(shortcut["rounds"]) == 2 and shortcut["first_rate"] == 1.0
    shortcut_row = report.funnel[1]
    assert shortcut_row["held_out"] == 3 and shortcut_row["reasons"] == {"image_free_answerable": 3}


def test_a_successful_rewrite_keeps_answer_and_position(store, settings):
    make_mcqs(store, settings, 2)
    before = {m["mcq_id"]: m for m in all_mcqs(store)}

    def answerer(messages, schema, options):  # the original wording leaks, the rewrite not
        text = messages[-1]["content"]
        return (
            correct_letter_answerer(messages, schema, options)
            if "panel" in text
            else (wrong_letter_answerer(messages, schema, options))
        )

    llm = ScriptedLLM(answer=answerer)
    cfg = with_select(settings, difficulty=False, bloom=False)
    report = run_select(store, cfg, llm=llm)
    assert report.kept == 2 and report.rewritten == 2
    for mcq in all_mcqs(store):
        old = before[mcq["mcq_id"]]
        assert mcq["question"] == "Which structure does the arrow mark in this image?"
        assert mcq["correct_index"] == old["correct_index"]
        assert mcq["choices"][mcq["correct_index"]] == old["correct_answer"]
        assert mcq["image_free_pass_rate"] == 0.0
        original = json.loads(mcq["params_json"])["select"]["shortcut"]["original"]
        assert original["question"] == old["question"]
    assert llm.count("rewrite") == 2  # one round sufficed for each


def test_rejected_rewrites_count_as_rounds(store, settings):
    make_mcqs(store, settings, 1)
    llm = ScriptedLLM(
        answer=correct_letter_answerer,
        check=lambda m, s, o: {"same_answer": False, "reason": "asks something else"},
    )
    cfg = with_select(settings, rewrite_rounds=3, difficulty=False, bloom=False)
    run_select(store, cfg, llm=llm)
    assert llm.count("rewrite") == 3 and llm.count("check") == 3
    (mcq,) = all_mcqs(store)
    rounds = json.loads(mcq["params_json"])["select"]["shortcut"]["rounds"]
    assert all("meaning check failed" in r["rejected"] for r in rounds)
    assert mcq["status"] == "flagged"


def set_cot(store, cot: str):
    for mcq in all_mcqs(store):
        store.update_where("mcqs", f"mcq_id = '{mcq['mcq_id']}'", {"cot": cot})


def test_bad_cot_is_regenerated_once_then_held_out(store, settings):
    make_mcqs(store, settings, 2)
    set_cot(store, "Answer: it is obvious")
    llm = ScriptedLLM(cot=lambda m, s, o: {"cot": "too short"}, answer=wrong_letter_answerer)
    report = run_select(store, with_select(settings, difficulty=False), llm=llm)
    assert llm.count("cot") == 2  # once per item, never more
    assert llm.count("answer") == 0  # held-out items skip the model-based checks
    assert llm.count("bloom") == 0  # ... and get the free verb-rule Bloom level instead
    assert report.held_out == 2
    for mcq in all_mcqs(store):
        assert mcq["status"] == "held_out"
        assert mcq["reason"].startswith("cot_")
        assert "the regenerated CoT failed too (cot_length" in mcq["reason"]
        assert mcq["bloom_level"] == rule_level(mcq["question"], mcq["task_str"])[0]
        assert json.loads(mcq["params_json"])["select"]["bloom"]["source"] == "rule"
    assert report.funnel[0]["held_out"] == 2


def test_bad_cot_fixed_by_regeneration_is_kept(store, settings):
    make_mcqs(store, settings, 2)
    set_cot(store, "Observation: x. Answer: maybe")
    llm = ScriptedLLM(answer=wrong_letter_answerer)
    report = run_select(store, with_select(settings, difficulty=False), llm=llm)
    assert llm.count("cot") == 2 and report.kept == 2
    for mcq in all_mcqs(store):
        letter = "ABCD"[mcq["correct_index"]]
        assert mcq["cot"].endswith(f"Answer: ({letter}) {mcq['correct_answer']}")
        reasoning = json.loads(mcq["params_json"])["select"]["reasoning"]
        assert reasoning["regenerated"] and reasoning["original_cot"].startswith("Observation: x")
    assert "2 CoTs regenerated, 2 fixed" in report.funnel[0]["note"]


def test_difficulty_policies_in_the_step_and_rerun_without_model_calls(store, settings):
    make_mcqs(store, settings, 8)
    solved = {a for a in ANSWERS[:4]}  # items whose answer is one of these are always solved

    def difficulty_or_blind(messages, schema, options):
        if "Figure caption" not in messages[-1]["content"]:
            return wrong_letter_answerer(messages, schema, options)  # image-free: never right
        shown = [line[3:] for line in messages[-1]["content"].splitlines() if line[1:3] == ". "]
        for index, option in enumerate(shown):
            if option in solved:
                return {"answer": "ABCD"[index]}
        return wrong_letter_answerer(messages, schema, options)

    llm = ScriptedLLM(answer=difficulty_or_blind)
    cfg = with_select(settings, policy="drop_always", image_free_attempts=2, difficulty_attempts=3)
    report = run_select(store, cfg, llm=llm)
    assert report.selection_policy == {
        "policy": "drop_always",
        "entered": 8,
        "kept": 4,
        "held_out": 4,
    }
    assert report.tiers == {"always": 4, "never": 4}
    held = all_mcqs(store, "status = 'held_out'")
    assert len(held) == 4 and all(m["reason"].startswith("policy_drop_always") for m in held)
    # Another policy: no model call, only the policy is recomputed.
    again = ScriptedLLM()
    cfg = with_select(
        settings,
        policy="hardest",
        hardest_fraction=0.25,
        image_free_attempts=2,
        difficulty_attempts=3,
    )
    report = run_select(store, cfg, llm=again)
    assert again.count() == 0 and report.already_checked == 8
    assert report.selection_policy["kept"] == 2 and report.selection_policy["held_out"] == 6
    assert {m["difficulty_tier"] for m in all_mcqs(store, "status = 'kept'")} == {"never"}
    run = store.get("runs", report.run_id)
    assert json.loads(run["counts_json"])["selection_policy"]["policy"] == "hardest"


def test_reviewed_items_are_left_alone(store, settings):
    make_mcqs(store, settings, 3)
    first = all_mcqs(store)[0]
    store.update_where("mcqs", f"mcq_id = '{first['mcq_id']}'", {"review": "accepted"})
    llm = ScriptedLLM(answer=wrong_letter_answerer)
    report = run_select(store, with_select(settings, difficulty=False), llm=llm)
    assert report.managed == 2
    assert store.get("mcqs", first["mcq_id"])["status"] == "pending"


def test_cancel_inside_a_batch_writes_the_checked_items_and_a_rerun_does_the_rest(store, settings):
    from microvqa_tui.errors import Cancelled
    from microvqa_tui.progress import CancelToken

    make_mcqs(store, settings, 6)
    cfg = with_select(settings, difficulty=False, shortcut_removal=False)
    cancel = CancelToken()
    blooms = []

    def cancel_at_the_second(messages, schema, options):
        blooms.append(1)
        if len(blooms) == 2:
            cancel.cancel()  # as the TUI's cancel key would, while item 2 is checked
        return {"level": 2, "confidence": 0.8}

    with pytest.raises(Cancelled):  # one batch of 8: the cancel lands inside it
        run_select(store, cfg, llm=ScriptedLLM(bloom=cancel_at_the_second), cancel=cancel)
    checked = all_mcqs(store, "selection_version != ''")
    assert len(checked) == 2 and {m["status"] for m in checked} == {"kept"}
    run = max(store.page("runs", where="step = 'select'", limit=5), key=lambda r: r["started_at"])
    assert run["status"] == "cancelled"
    report = run_select(store, cfg, llm=ScriptedLLM())
    assert report.already_checked == 2 and report.checked == 4 and report.kept == 6


def test_bloom_llm_failure_uses_the_rule(store, settings):
    make_mcqs(store, settings, 2)
    llm = ScriptedLLM(answer=wrong_letter_answerer, bloom=lambda m, s, o: "{broken")
    report = run_select(
        store, with_select(settings, difficulty=False, shortcut_removal=False), llm=llm
    )
    assert report.kept == 2
    for mcq in all_mcqs(store):
        bloom = json.loads(mcq["params_json"])["select"]["bloom"]
        assert bloom["source"] == "rule" and mcq["bloom_level"] == bloom["rule_level"]
    assert "rule fallback 2" in report.funnel[2]["note"]


def test_imported_mcqs_are_checked_unless_turned_off(store, settings):
    from store.schema import utcnow

    store.insert_new(
        "mcqs",
        [
            {
                "mcq_id": "imported-1",
                "figure_id": "fig000",
                "question": "Which layer is marked?",
                "choices": CHOICES,
                "correct_index": 0,
                "correct_answer": CHOICES[0],
                "cot": GOOD_COT,
                "origin": "imported",
                "family": "imported",
                "created_at": utcnow(),
            }
        ],
    )
    llm = ScriptedLLM(answer=wrong_letter_answerer)
    off = with_select(settings, difficulty=False, include_imported=False)
    report = run_select(store, off, llm=llm)
    assert report.managed == 0 and llm.count() == 0
    report = run_select(store, with_select(settings, difficulty=False), llm=llm)  # the default
    assert report.managed == 1 and report.kept == 1
    assert next((r["check"], r["origin"]) for r in report.funnel) == ("reasoning", "imported")


def test_funnel_counts_stage1_and_graph_from_the_store(store, settings):
    qas = add_qas(store, 6, status="pending")
    store.upsert(
        "quarantine",
        [
            {
                "quarantine_id": f"q{i}",
                "stage": "stage1",
                "source": "captions",
                "reason": reason,
                "created_at": utcnow(),
            }
            for i, reason in enumerate(
                ["evidence_not_in_caption", "evidence_not_in_caption", "bad_json"]
            )
        ],
    )
    scored = []
    for i, qa in enumerate(qas[:5]):
        held = i < 2
        reason = (
            "graph_low_score: score 0.10 < 0.50: nli_contradict 0.91 (high), clip_image_qa 0.12 (low)"
            if i == 0
            else "reviewer_rejected: score 0.30: text_caption_qa 0.10 (low)"
        )
        scored.append(
            {
                **qa,
                "score": 0.1 * (i + 1),
                "status": "held_out" if held else "kept",
                "reason": reason if held else "",
            }
        )
    store.upsert("qas", scored)
    rows = {(r.stage, r.check): r for r in funnel_rows(store)}
    stage1 = rows[("stage1", "generation")]
    assert (stage1.entered, stage1.passed, stage1.held_out) == (9, 6, 3)
    assert stage1.reasons == {"evidence_not_in_caption": 2, "bad_json": 1}
    graph = rows[("graph", "consistency")]  # the unscored sixth QA has not entered
    assert (graph.entered, graph.passed, graph.held_out) == (5, 3, 2)
    assert graph.reasons == {"nli_contradict high": 1, "rejected by a reviewer": 1}


def test_an_mcq_whose_check_call_timed_out_stays_unchecked(store, settings):
    from microvqa_tui.models.client import TIMEOUT, JsonResult
    from microvqa_tui.progress import RecordingProgress

    make_mcqs(store, settings, 4)
    cfg = with_select(settings, image_free_attempts=2, difficulty_attempts=2)
    calls = []

    def slow_for_some(messages, schema, options):
        calls.append(1)
        if len(calls) in (1, 9):  # 4 answer calls per MCQ: one call of MCQ 1, one of MCQ 3
            return JsonResult(error=TIMEOUT, message="the 120 s timeout passed [timeout]")
        return wrong_letter_answerer(messages, schema, options)

    progress = RecordingProgress()
    report = run_select(store, cfg, llm=ScriptedLLM(answer=slow_for_some), progress=progress)
    assert report.timed_out == 2 and report.checked == 2 and report.kept == 2
    assert report.llm["timed_out_calls"] == 2
    assert len(all_mcqs(store, "selection_version != ''")) == 2  # the others wait
    assert any("MICROVQA_MODELS__LLM_TIMEOUT_S" in line for line in progress.lines)
    # the next run checks just those two, with a model that answers in time
    again = run_select(store, cfg, llm=ScriptedLLM(answer=wrong_letter_answerer))
    assert again.already_checked == 2 and again.checked == 2 and again.timed_out == 0
    assert again.kept == 4 and {m["status"] for m in all_mcqs(store)} == {"kept"}
