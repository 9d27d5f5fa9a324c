"""Where an MCQ run resumes: the QAs left to do for the current prompt/model version, the
QAs quarantined for it, and the generation row of the funnel, read from the store."""

from __future__ import annotations

from collections import Counter

from microvqa_tui.common.funnel import FunnelRow
from microvqa_tui.config.mcq import MCQSettings
from microvqa_tui.vocabulary import MODEL_TIMEOUT
from microvqa_tui.vocabulary import ORIGIN_STAGE3 as ORIGIN
from microvqa_tui.vocabulary import STAGE_MCQ as STAGE
from store import Store
from store.queries import quote


def pending_qas(
    store: Store, cfg: MCQSettings, qas: list[dict], version: str, skipped: Counter[str]
) -> tuple[list[dict], dict[str, list[str]], list[int]]:
    """(QAs to do, stale unreviewed MCQs per QA, answer positions of the MCQs that stay);
    counts the QAs skipped into `skipped` (existing: done; quarantined: for this version)."""
    existing = store.rows(
        "mcqs",
        f"origin = {quote(ORIGIN)}",
        ["mcq_id", "qa_id", "prompt_version", "choices", "correct_index", "review"],
    )
    done: set[str] = set()
    stale: dict[str, list[str]] = {}
    position_history: list[int] = []
    for row in existing:
        current = row["prompt_version"] == version
        if current:
            done.add(row["qa_id"])
        elif row["review"] == "unreviewed":
            stale.setdefault(row["qa_id"], []).append(row["mcq_id"])
            continue  # superseded once regenerated: its position no longer counts
        if len(row["choices"]) == cfg.n_choices:
            position_history.append(row["correct_index"])
    failed = failed_qas(store, version)
    todo = []
    for qa in qas:
        if qa["qa_id"] in done:
            skipped["existing"] += 1
        elif qa["qa_id"] in failed and not cfg.retry_quarantined:
            skipped["quarantined"] += 1
        else:
            todo.append(qa)
    if cfg.limit is not None:
        todo = todo[: cfg.limit]
    return todo, stale, position_history


def failed_qas(store: Store, version: str) -> set[str]:
    """QAs whose attempts with this version all failed (they have quarantine rows of it),
    less those whose last call timed out: a timeout uses up no attempt, they stay to do."""
    return {
        qa_id for qa_id, reason in last_reasons(store, version).items() if reason != MODEL_TIMEOUT
    }


def last_reasons(store: Store, version: str) -> dict[str, str]:
    """QA -> the reason of its latest quarantine row of this version (by time, then
    attempt: a later run starts its attempts at 1 again)."""
    rows = store.rows(
        "quarantine", _of_version(version), ["item_id", "attempt", "reason", "created_at"]
    )
    rows.sort(key=lambda r: (r["created_at"], r["attempt"]))
    return {row["item_id"]: row["reason"] for row in rows}


def _of_version(version: str) -> str:
    return f"stage = {quote(STAGE)} AND version = {quote(version)}"


def generation_row(store: Store, qas: list[dict], version: str, qa_source: str) -> FunnelRow:
    """Per-QA outcome over every eligible QA, from the store (so a resumed run counts all)."""
    eligible = {q["qa_id"] for q in qas}
    where = f"origin = {quote(ORIGIN)} AND prompt_version = {quote(version)}"
    with_mcq = set(store.column("mcqs", "qa_id", where)) & eligible
    row = FunnelRow(STAGE, "generation", passed=len(with_mcq))
    timed_out = 0
    for qa_id, reason in last_reasons(store, version).items():
        if qa_id not in eligible or qa_id in with_mcq:
            continue
        if reason == MODEL_TIMEOUT:
            timed_out += 1  # still to do, not held out
        else:
            row.hold(reason)
    row.entered = row.passed + row.held_out
    waiting = len(eligible) - row.entered
    notes = [f"QAs from: {qa_source}"]
    if waiting:
        notes.append(f"{waiting} QAs not processed yet")
    if timed_out:
        notes.append(f"{timed_out} of them because the model call timed out")
    row.note = "; ".join(notes)
    return row
