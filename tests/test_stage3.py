"""Stage 3 (MCQ generation) with scripted fakes: balance, quarantine, bounds, resume."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest
from mcq_helpers import (
    DISTRACTORS,
    ScriptedLLM,
    add_qas,
    all_mcqs,
    good_mcq,
    prompt_field,
    quarantine_rows,
)

from microvqa_tui.common.funnel import funnel_rows, funnel_table
from microvqa_tui.errors import GenerationError
from microvqa_tui.models.client import TIMEOUT, JsonResult
from microvqa_tui.pipeline.stage3 import MCQSettings, run_mcq
from microvqa_tui.pipeline.stage3.cot import (
    final_answer_text,
    match_option,
    with_final_answer,
)
from microvqa_tui.pipeline.stage3.layout import microvqa_records
from microvqa_tui.pipeline.stage3.positions import PositionBalancer
from microvqa_tui.pipeline.stage3.prompts import DEFAULT_PROMPT_DIR
from microvqa_tui.progress import CancelToken, RecordingProgress
from store import text_id
from tests.stage_helpers import step_settings


def with_mcq(settings, **values):
    return step_settings(settings, mcq=MCQSettings(**values))


# ---------------------------------------------------------------------------- units
def test_balancer_is_balanced_and_deterministic():
    first = [PositionBalancer(4, seed=3).take() for _ in range(1)]
    balancer = PositionBalancer(4, seed=3)
    picks = [balancer.take() for _ in range(41)]
    counts = Counter(picks)
    assert max(counts.values()) - min(counts.values()) <= 1
    assert picks[:1] == first
    again = PositionBalancer(4, seed=3)
    assert [again.take() for _ in range(41)] == picks
    # Not a plain cycle: the order changes between rounds.
    rounds = [tuple(picks[i : i + 4]) for i in range(0, 40, 4)]
    assert len(set(rounds)) > 1
    # Resuming from existing positions continues the balance.
    resumed = PositionBalancer(4, seed=3, existing=[0, 0, 0, 1])
    assert resumed.take() in (2, 3)


def test_match_option_by_letter_text_and_fuzzy():
    choices = ["Basal layer", "Granular layer", "Spinous layer", "Stratum corneum"]
    assert match_option("(B) Granular layer", choices) == 1
    assert match_option("C", choices) == 2
    assert match_option("basal layer.", choices) == 0
    assert match_option("the stratum corneum", choices) == 3
    assert match_option("layer", choices) is None  # ambiguous
    assert match_option("mitochondria", choices) is None
    cot = "Observation: x. Reasoning: y.\nAnswer: Granular layer"
    assert final_answer_text(cot) == "Granular layer"
    assert with_final_answer(cot, 2, choices).endswith("Answer: (C) Spinous layer")
    assert with_final_answer("No answer line", 0, choices).endswith("Answer: (A) Basal layer")


# ---------------------------------------------------------------------------- the step
def test_positions_balanced_over_40_items(store, settings):
    add_qas(store, 40)
    llm = ScriptedLLM()  # the model always puts the answer first
    report = run_mcq(store, settings, llm=llm)
    assert report.generated == 40
    counts = Counter(m["correct_index"] for m in all_mcqs(store))
    assert sorted(counts) == [0, 1, 2, 3]
    assert all(9 <= n <= 11 for n in counts.values()), counts
    assert report.positions == {"ABCD"[i]: counts[i] for i in range(4)}


def flaky(messages, schema, options):
    """A good MCQ, except for every 7th QA: unparsable."""
    question = prompt_field(messages, "Question")
    number = int(question.split()[1].rstrip(":"))
    return "{not json" if number % 7 == 0 else good_mcq(messages)


def test_positions_stay_balanced_when_some_items_fail(store, settings):
    add_qas(store, 40)
    report = run_mcq(store, with_mcq(settings, max_attempts=1), llm=ScriptedLLM(mcq=flaky))
    assert report.generated == 34 and report.held_out == 6
    counts = Counter(m["correct_index"] for m in all_mcqs(store))
    assert max(counts.values()) - min(counts.values()) <= 1


class LastFirst:
    """An engine whose batches finish last first, as Ray actors' batches may."""

    name, batch_size = "last-first", 0

    def run(self, step, settings, batches, cancel):
        from microvqa_tui.engines.base import Done

        step.load(settings)
        finished = [Done(step.process(items), len(items)) for items in batches]
        yield from reversed(finished)


def test_batches_finishing_out_of_order_get_the_positions_of_an_in_order_run(tmp_path, settings):
    from store import open_store

    cfg = with_mcq(settings, max_attempts=1, batch_size=3)
    rows = {}
    for name, engine in (("in-order", None), ("last-first", LastFirst())):
        store = open_store(tmp_path / name)
        add_qas(store, 20)
        report = run_mcq(store, cfg, llm=ScriptedLLM(mcq=flaky), engine=engine)
        assert report.generated == 17 and report.held_out == 3
        mcqs = sorted(all_mcqs(store), key=lambda m: m["qa_id"])
        rows[name] = [(m["mcq_id"], m["correct_index"], m["choices"], m["cot"]) for m in mcqs]
    assert len({index for _, index, _, _ in rows["in-order"]}) == 4
    assert rows["last-first"] == rows["in-order"]


def test_mcq_layout_ids_and_cot_letter(store, settings):
    qas = add_qas(store, 6)
    run_mcq(store, settings, llm=ScriptedLLM())
    mcqs = all_mcqs(store)
    by_qa = {q["qa_id"]: q for q in qas}
    for mcq in mcqs:
        qa = by_qa[mcq["qa_id"]]
        assert mcq["mcq_id"] == text_id(mcq["qa_id"], mcq["question"], *mcq["choices"])
        assert mcq["choices"][mcq["correct_index"]] == mcq["correct_answer"] == qa["answer"]
        assert sorted(mcq["choices"]) == sorted([qa["answer"], *DISTRACTORS[:3]])
        letter = "ABCD"[mcq["correct_index"]]
        assert mcq["cot"].endswith(f"Answer: ({letter}) {qa['answer']}")
        assert mcq["task_str"] == qa["task_type"]
        assert mcq["status"] == "pending" and mcq["origin"] == "stage3"
        params = json.loads(mcq["params_json"])
        assert params["attempt"] == 1 and params["n_choices"] == 4
    records = microvqa_records(store)
    assert len(records) == 6
    assert all(r["image_caption"].startswith("Figure ") for r in records)
    assert {"question", "choices", "correct_index", "correct_answer", "cot", "task_str"} <= set(
        records[0]
    )


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: "{ truncated", "unparsable_output"),
        (lambda d: {**d, "options": d["options"][:3]}, "wrong_option_count"),
        (lambda d: {**d, "options": [*d["options"][:3], d["options"][0]]}, "duplicate_options"),
        (lambda d: {**d, "answer": "Golgi apparatus"}, "answer_not_in_options"),
        (
            lambda d: {**d, "cot": d["cot"].rsplit("Answer:", 1)[0] + "Answer: " + d["options"][2]},
            "cot_other_option",
        ),
        (lambda d: {**d, "options": [*d["options"][:3], "Fat"]}, "distractor_length"),
        (lambda d: {**d, "question": "  "}, "empty_question"),
        (
            lambda d: {**d, "observation": "one sentence on what the image shows", "cot": ""},
            "echoed_prompt",
        ),
        (
            lambda d: {**d, "options": [*d["options"][:3], "reasoning: the cells are basal"]},
            "echoed_prompt",
        ),
        (lambda d: {**d, "question": f"Is it {d['answer']}?"}, "answer_in_question"),
        (lambda d: {**d, "cot": ""}, "empty_cot"),
        (
            lambda d: {
                **d,
                "options": ["Golgi apparatus", *d["options"][1:]],
                "answer": "Golgi apparatus",
            },
            "answer_differs_from_qa",
        ),
        (lambda d: GenerationError("model crashed"), "unparsable_output"),
    ],
)
def test_malformed_items_are_quarantined_with_reason_and_raw(store, settings, mutate, reason):
    add_qas(store, 1)
    llm = ScriptedLLM(mcq=lambda m, s, o: mutate(good_mcq(m)))
    report = run_mcq(store, with_mcq(settings, max_attempts=2), llm=llm)
    assert report.generated == 0 and report.held_out == 1
    rows = quarantine_rows(store)
    assert len(rows) == 2  # one per attempt
    assert {r["reason"] for r in rows} == {reason}
    assert all(r["detail"] for r in rows)
    if "model crashed" not in rows[0]["detail"]:  # an exception without output has no raw
        assert all(r["payload"] for r in rows)  # the raw output, for a person to look at
    assert report.reasons == {reason: 1}


def test_regeneration_is_bounded(store, settings):
    add_qas(store, 5)
    llm = ScriptedLLM(mcq=lambda m, s, o: "not json at all")
    report = run_mcq(store, with_mcq(settings, max_attempts=3), llm=llm)
    assert llm.count("mcq") == 15  # 5 QAs x 3 attempts, never more
    assert report.attempts == 15 and report.failed_attempts == 15
    assert store.count("mcqs") == 0
    # Attempts differ: the temperature rises and the seed changes.
    options = [o for _, _, o in llm.calls[:3]]
    assert len({o["seed"] for o in options}) == 3
    assert options[0]["temperature"] < options[1]["temperature"] < options[2]["temperature"]
    # A re-run does not retry them (their attempts are spent) unless asked to.
    again = ScriptedLLM()
    second = run_mcq(store, with_mcq(settings, max_attempts=3), llm=again)
    assert again.count() == 0 and second.skipped_quarantined == 5
    third = run_mcq(store, with_mcq(settings, retry_quarantined=True), llm=again)
    assert third.generated == 5


def test_retry_succeeds_on_a_later_attempt(store, settings):
    add_qas(store, 1)
    replies = iter(["{oops", None])
    llm = ScriptedLLM(mcq=lambda m, s, o: next(replies) or good_mcq(m))
    report = run_mcq(store, settings, llm=llm)
    assert report.generated == 1 and report.attempts == 2
    (mcq,) = all_mcqs(store)
    assert json.loads(mcq["params_json"])["attempt"] == 2
    assert [r["reason"] for r in quarantine_rows(store)] == ["unparsable_output"]
    generation, attempts = report.funnel
    assert generation["passed"] == 1 and generation["held_out"] == 0
    assert attempts["entered"] == 2 and attempts["held_out"] == 1


def test_resume_skips_done_and_new_prompt_regenerates(store, settings, tmp_path):
    add_qas(store, 4)
    run_mcq(store, settings, llm=ScriptedLLM())
    again = ScriptedLLM()
    report = run_mcq(store, settings, llm=again)
    assert again.count() == 0 and report.skipped_existing == 4
    # An edited prompt is a new version: everything is generated again, old items superseded.
    prompt_dir = tmp_path / "prompts"
    shutil.copytree(DEFAULT_PROMPT_DIR, prompt_dir)
    path = prompt_dir / "mcq_generate.md"
    path.write_text(path.read_text() + "\nBe concise.\n")
    edited = ScriptedLLM(
        mcq=lambda m, s, o: {**good_mcq(m), "question": good_mcq(m)["question"] + " (v2)"}
    )
    report = run_mcq(store, with_mcq(settings, prompt_dir=prompt_dir), llm=edited)
    assert edited.count() == 4 and report.generated == 4
    statuses = Counter(m["status"] for m in all_mcqs(store))
    assert statuses == {"pending": 4, "held_out": 4}
    assert all(m["reason"].startswith("superseded") for m in all_mcqs(store, "status = 'held_out'"))


def test_limit_and_cancel_keep_completed_items(store, settings):
    add_qas(store, 6)
    report = run_mcq(store, with_mcq(settings, limit=2), llm=ScriptedLLM())
    assert report.generated == 2
    cancel = CancelToken()
    calls = []

    def cancel_after_two(messages, schema, options):
        calls.append(1)
        if len(calls) == 2:
            cancel.cancel()
        return good_mcq(messages)

    from microvqa_tui.errors import Cancelled

    with pytest.raises(Cancelled):
        run_mcq(store, settings, llm=ScriptedLLM(mcq=cancel_after_two), cancel=cancel)
    assert store.count("mcqs") == 4  # the two made before the cancel were written
    run = max(store.page("runs", where="step = 'mcq'", limit=10), key=lambda r: r["started_at"])
    assert run["status"] == "cancelled"


def test_pending_qas_used_only_while_the_graph_has_not_run(store, settings):
    add_qas(store, 3, status="pending")
    progress = RecordingProgress()
    report = run_mcq(store, settings, llm=ScriptedLLM(), progress=progress)
    assert report.generated == 3 and report.qa_source == "pending"
    assert "graph step has not judged" in report.note
    assert any("pending" in line for line in progress.lines)
    # Once the graph judged QAs, only kept ones are used.
    add_qas(store, 2, status="kept", start=100)
    add_qas(store, 1, status="held_out", start=200)
    report = run_mcq(store, settings, llm=ScriptedLLM())
    assert report.qa_source == "kept" and report.eligible == 2 and report.generated == 2
    # qa_source=kept with nothing judged says what to do.
    report = run_mcq(store, with_mcq(settings, qa_source="kept"), llm=ScriptedLLM())
    assert report.eligible == 2


def test_run_record_holds_funnel_and_counts(store, settings):
    add_qas(store, 3)
    replies = iter(["{bad", "{bad", "{bad"])

    def first_fails(messages, schema, options):
        reply = next(replies, None)
        return reply or good_mcq(messages)

    report = run_mcq(store, with_mcq(settings, max_attempts=3), llm=ScriptedLLM(mcq=first_fails))
    assert report.held_out == 1 and report.generated == 2
    run = store.get("runs", report.run_id)
    counts = json.loads(run["counts_json"])
    assert counts["funnel"][0] == {
        "stage": "mcq",
        "check": "generation",
        "entered": 3,
        "passed": 2,
        "held_out": 1,
        "reasons": {"unparsable_output": 1},
        "note": "QAs from: kept",
    }
    assert json.loads(run["models_json"])["llm"] == "scripted-fake"
    rows = funnel_rows(store)  # stage 1 (the QAs, counted from the store), then the MCQ run
    assert [(r.stage, r.check) for r in rows] == [
        ("stage1", "generation"),
        ("mcq", "generation"),
        ("mcq", "attempts"),
    ]
    table = funnel_table(rows)
    assert table.row_count == 3


def test_cot_is_assembled_from_parts_and_answer_pinned_in_the_schema(store, settings):
    (qa,) = add_qas(store, 1)

    def parts(messages, schema, options):
        item = good_mcq(messages)
        del item["cot"]
        return {
            **item,
            "observation": "A row of small dark cells lines the dermis.",
            "reasoning": "The layer resting on the dermis is the basal one.",
            "conclusion": item["answer"],
        }

    llm = ScriptedLLM(mcq=parts)
    run_mcq(store, settings, llm=llm)
    (mcq,) = all_mcqs(store)
    letter = "ABCD"[mcq["correct_index"]]
    assert mcq["cot"] == (
        "Observation: A row of small dark cells lines the dermis.\n"
        "Reasoning: The layer resting on the dermis is the basal one.\n"
        f"Answer: ({letter}) {qa['answer']}"
    )
    # The grammar pins the QA's answer as the answer and the first option.
    (schema,) = llm.schemas
    assert schema["properties"]["answer"] == {"type": "string", "enum": [qa["answer"]]}
    assert schema["properties"]["options"]["prefixItems"][0]["enum"] == [qa["answer"]]
    # Unpinned, the model phrases the answer (and the checks compare it with the QA's).
    llm = ScriptedLLM()
    run_mcq(store, with_mcq(settings, pin_answer=False, retry_quarantined=True), llm=llm)
    assert llm.schemas[0]["properties"]["options"]["items"]["type"] == "string"


def test_nothing_to_do_loads_no_model(store, settings):
    report = run_mcq(store, settings)  # no QA: no model is resolved, nothing fails
    assert report.eligible == 0 and report.generated == 0 and report.model == "none"


def timed_out(messages, schema, options):
    """What the in-process model returns when its time limit cuts the JSON short."""
    return JsonResult(
        raw='{"question": "Which structure',
        error=TIMEOUT,
        message="scripted-fake: no parsable JSON after 1 attempt(s): the 120 s timeout "
        "passed before the JSON was complete [timeout]",
    )


def test_a_timed_out_call_uses_no_attempt_and_the_qa_stays_pending(store, settings):
    add_qas(store, 3)
    progress = RecordingProgress()
    slow = ScriptedLLM(mcq=timed_out)
    cfg = with_mcq(settings, max_attempts=2)
    report = run_mcq(store, cfg, llm=slow, progress=progress)
    assert slow.count("mcq") == 3  # no second attempt into a busy machine
    assert report.generated == 0 and report.held_out == 0 and report.timed_out == 3
    rows = quarantine_rows(store)  # kept for the audit trail, under their own code
    assert [r["reason"] for r in rows] == ["model_timeout"] * 3
    assert all("timeout" in r["detail"] and r["payload"] for r in rows)
    generation = report.funnel[0]
    assert (
        generation["held_out"] == 0
        and "3 of them because the model call timed out" in (generation["note"])
    )
    assert any("MICROVQA_MODELS__LLM_TIMEOUT_S" in line for line in progress.lines)
    # A re-run with a model that answers makes them all: no QA counts as quarantined.
    working = ScriptedLLM()
    again = run_mcq(store, cfg, llm=working)
    assert again.skipped_quarantined == 0 and again.generated == 3
    assert working.count("mcq") == 3 and len(all_mcqs(store)) == 3


def test_a_timeout_after_failed_attempts_leaves_the_qa_pending(store, settings):
    add_qas(store, 1)
    cfg = with_mcq(settings, max_attempts=2)
    replies = iter(["{oops", None])  # attempt 1 malformed, attempt 2 timed out
    first = run_mcq(
        store, cfg, llm=ScriptedLLM(mcq=lambda m, s, o: next(replies) or timed_out(m, s, o))
    )
    assert first.timed_out == 1 and first.held_out == 0
    # Next run: the QA is tried again, and two malformed replies now spend its attempts.
    broken = ScriptedLLM(mcq=lambda m, s, o: "{oops")
    second = run_mcq(store, cfg, llm=broken)
    assert broken.count("mcq") == 2 and second.held_out == 1 and second.timed_out == 0
    assert second.funnel[0]["held_out"] == 1
    idle = ScriptedLLM()
    third = run_mcq(store, cfg, llm=idle)
    assert idle.count() == 0 and third.skipped_quarantined == 1
