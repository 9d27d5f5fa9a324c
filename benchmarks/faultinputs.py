"""What the fault campaign feeds the store and runs beside a step: the sample input, the QAs
seeded when Stage 1's small model writes none, and the reviewer and TUI-like reader that race
a writing step (each runs as its own process: `faults.py --worker review|reader`)."""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path

from faultkit import SAMPLE_MANIFEST


def write_sample(folder: Path, figures: int) -> Path:
    """The first `figures` rows of the embedded sample (images copied beside), plus a second
    manifest that overlaps it by half, for the concurrent ingests."""
    rows = [json.loads(line) for line in SAMPLE_MANIFEST.read_text("utf-8").splitlines() if line]
    rows = rows[:figures]
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for row in rows:
        shutil.copy2(SAMPLE_MANIFEST.parent / row["image"], folder / "images")
        row["image"] = f"images/{Path(row['image']).name}"
    lines = [json.dumps(r) for r in rows]
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "overlap.jsonl").write_text("\n".join(lines[len(lines) // 2 :]) + "\n")
    return folder / "manifest.jsonl"


def seed_qas(store_path: Path) -> int:
    """One plain QA per caption when Stage 1's small model wrote none (its output does not
    always parse), so the graph, MCQ and later steps have input. Returns how many."""
    from store import open_store
    from store.ids import text_id
    from store.schema import utcnow

    store = open_store(store_path)
    if store.count("qas"):
        return 0
    rows = []
    for cap in store.rows("captions", columns=["caption_id", "figure_id", "text"]):
        question = "What does this micrograph show, according to its caption?"
        answer = cap["text"].split(". ")[0][:200]
        rows.append(
            {
                "qa_id": text_id(cap["figure_id"], question, answer),
                "figure_id": cap["figure_id"],
                "caption_id": cap["caption_id"],
                "question": question,
                "answer": answer,
                "task_type": "expert_visual_understanding",
                "evidence": answer,
                "origin": "seeded",
                "created_at": utcnow(),
            }
        )
    store.insert_new("qas", rows)
    return len(rows)


def decisions_lost(store: Path, decided: dict[str, str]) -> tuple[int, list[str]]:
    """Decisions whose item no longer shows them (or whose audit row is gone)."""
    from store import open_store

    s = open_store(store)
    rows = {r["mcq_id"]: r["review"] for r in s.rows("mcqs", columns=["mcq_id", "review"])}
    logged = {
        (r["item_id"], r["action"]) for r in s.rows("decisions", columns=["item_id", "action"])
    }
    lost = []
    for mcq_id, review in decided.items():
        action = "accept" if review == "accepted" else "reject"
        if rows.get(mcq_id) != review or (mcq_id, action) not in logged:
            lost.append(f"mcqs: decision {review} on {mcq_id[:12]} lost (now {rows.get(mcq_id)!r})")
    return len(lost), lost[:3]


# ---------------------------------------------------------------------- workers
def review_worker(seed: str, store_path: str) -> dict:
    """Accept / reject up to 6 MCQs through the review service, a little apart."""
    from microvqa_tui.services.review import Reviewer
    from store import open_store

    rng = random.Random(int(seed))
    store = open_store(store_path)
    ids = sorted(r["mcq_id"] for r in store.rows("mcqs", columns=["mcq_id"]))
    decided: dict[str, str] = {}
    reviewer = Reviewer(store, "faults")
    for mcq_id in rng.sample(ids, min(6, len(ids))):
        action = rng.choice(["accept", "reject"])
        reviewer.decide("mcq", mcq_id, action)
        decided[mcq_id] = "accepted" if action == "accept" else "rejected"
        time.sleep(rng.uniform(0.05, 0.4))
    return {"decided": decided}


def reader_worker(seconds: str, store_path: str) -> dict:
    """Read like the TUI does (first page of every view, stats) until `seconds` pass."""
    from microvqa_tui.services.query import fetch_page
    from microvqa_tui.services.stats import store_stats
    from microvqa_tui.services.views import VIEWS
    from store import open_store

    deadline = time.monotonic() + float(seconds)
    reads = errors = 0
    first = ""
    while True:
        try:
            store = open_store(store_path)
            for view in VIEWS.values():
                fetch_page(store, view, limit=20)
            store_stats(store)
            reads += 1
        except Exception as exc:  # every failure counts, whatever it is
            errors += 1
            first = first or f"{type(exc).__name__}: {exc}"[:300]
        if time.monotonic() > deadline:
            return {"reads": reads, "errors": errors, "first_error": first}
        time.sleep(0.2)
