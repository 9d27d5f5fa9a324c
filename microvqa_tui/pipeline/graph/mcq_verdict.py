"""The graph's verdict on imported MCQs, and what to say when there is nothing to judge.

An imported MCQ stands on its own QA (its question + correct answer + CoT, written by the
ingest; `mcqs.qa_id`). After the graph has scored the QAs, each unreviewed imported MCQ takes
its QA's verdict: held out with the graph's reason (`graph_held_out: score … < …: …`), or
kept, so the selection step checks it next. The verdict is also kept in
`params_json["graph"]` (score, run), beside the selection step's own results. A reviewer's
decision outranks both: reviewed MCQs are not touched.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from microvqa_tui.vocabulary import GRAPH_HELD_OUT as GRAPH_REASON
from microvqa_tui.vocabulary import (
    ORIGIN_IMPORTED,
    REVIEW_UNREVIEWED,
    STATUS_HELD_OUT,
    STATUS_KEPT,
    STATUS_PENDING,
)
from store import Store
from store.queries import in_list, quote

GRAPH_KEY = "graph"  # params_json key of the verdict
SELECT_KEY = "select"  # the selection step's params key (see pipeline.select.run.KEY)
IN_CHUNK = 2000


def _params(row: dict[str, Any]) -> dict[str, Any]:
    try:
        value = json.loads(row.get("params_json") or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def graph_verdict(row: dict[str, Any]) -> str:
    """`kept`, `held_out`, or "" when the graph has not judged this MCQ's QA."""
    return str(_params(row).get(GRAPH_KEY, {}).get("verdict", ""))


def held_by_graph(row: dict[str, Any]) -> bool:
    """Held out because the graph held its QA out: read from the verdict the graph stores
    beside the status (`params_json`), not from the reason's wording."""
    return row.get("status") == STATUS_HELD_OUT and graph_verdict(row) == STATUS_HELD_OUT


def _verdict(row: dict[str, Any], qa: dict[str, Any], run_id: str) -> dict[str, Any] | None:
    """The row with the QA's verdict applied, or None when nothing changes."""
    params = _params(row)
    verdict = STATUS_KEPT if qa["status"] == STATUS_KEPT else STATUS_HELD_OUT
    score = None if qa.get("score") is None else round(float(qa["score"]), 4)
    before = (row["status"], row["reason"], params.get(GRAPH_KEY, {}).get("verdict"))
    params[GRAPH_KEY] = {"verdict": verdict, "score": score, "run_id": run_id}
    new = dict(row)
    if verdict == STATUS_HELD_OUT:
        new["status"] = STATUS_HELD_OUT
        new["reason"] = f"{GRAPH_REASON}: {qa['reason'] or 'the graph held its QA out'}"
    elif row["status"] == STATUS_PENDING or held_by_graph(row):
        # Newly kept: the selection step checks it (again, if it had before the hold-out).
        params.pop(SELECT_KEY, None)
        new["status"], new["reason"] = STATUS_KEPT, ""
    if (new["status"], new["reason"], verdict) == before:
        return None
    new["params_json"] = json.dumps(params, ensure_ascii=False)
    return new


def apply_to_imported_mcqs(store: Store, run_id: str) -> dict[str, int]:
    """Give each unreviewed imported MCQ its QA's graph verdict; counts by new status."""
    where = (
        f"origin = {quote(ORIGIN_IMPORTED)} AND review = {quote(REVIEW_UNREVIEWED)} AND qa_id != ''"
    )
    rows = store.rows("mcqs", where)
    qa_ids = sorted({r["qa_id"] for r in rows})
    qas: dict[str, dict[str, Any]] = {}
    for start in range(0, len(qa_ids), IN_CHUNK):
        chunk = qa_ids[start : start + IN_CHUNK]
        where = f"{in_list('qa_id', chunk)} AND score IS NOT NULL"
        for qa in store.rows("qas", where, ["qa_id", "status", "reason", "score"]):
            qas[qa["qa_id"]] = qa
    changed = [
        new
        for row in rows
        if row["qa_id"] in qas and (new := _verdict(row, qas[row["qa_id"]], run_id)) is not None
    ]
    if changed:
        store.upsert("mcqs", changed)
    judged = [r for r in rows if r["qa_id"] in qas]
    counts = Counter(
        STATUS_KEPT if qas[r["qa_id"]]["status"] == STATUS_KEPT else STATUS_HELD_OUT for r in judged
    )
    return {"kept": counts[STATUS_KEPT], "held_out": counts[STATUS_HELD_OUT]}


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def no_qas_message(store: Store) -> tuple[str, str]:
    """(error, hint) for a store without QAs, naming what it does hold."""
    mcqs = Counter(r["origin"] or "unknown" for r in store.rows("mcqs", None, ["origin"]))
    held: list[str] = []
    if mcqs:
        by_origin = ", ".join(f"{n} {origin}" for origin, n in sorted(mcqs.items()))
        held.append(f"{_plural(sum(mcqs.values()), 'MCQ')} ({by_origin})")
    for table, noun in (("figures", "figure"), ("captions", "caption")):
        n = store.count(table)
        if n:
            held.append(_plural(n, noun))
    what = ", ".join(held) if held else "nothing"
    message = f"the store has {what} and no QAs: the graph judges QAs"
    if mcqs.get(ORIGIN_IMPORTED):
        hint = (
            "its imported MCQs came without their QAs (ingested by an older version): ingest "
            "the same source again (`microvqa ingest PATH`) to derive a QA from each, or run "
            "stage 1 (`microvqa run stage1`)"
        )
    elif held:
        hint = "run stage 1 (`microvqa run stage1`), or ingest a file of QAs (question + answer)"
    else:
        hint = "ingest a source first (`microvqa ingest PATH`)"
    return message, hint
