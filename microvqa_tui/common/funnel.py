"""The selection funnel: for each stage and check, how many items entered, passed and were
held out, and why.

The MCQ and selection steps store their rows in their run records (`counts_json["funnel"]`,
a list of `{stage, check, entered, passed, held_out, reasons, origin}`); the graph and
selection rows count generated and imported items apart (`origin`). Stage 1 and the graph filter
are counted from the store itself (QAs by status, stage-1 quarantine by reason), so a resumed
run still counts everything. `funnel_rows(store)` gathers the whole funnel, stage 1 to
selection, for the CLI (`microvqa funnel`) and the TUI; `funnel_table` renders it with rich.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from microvqa_tui.vocabulary import (
    ORIGIN_STAGE1,
    REVIEWER_REJECTED,
    STAGE_STAGE1,
    STATUS_HELD_OUT,
)

FUNNEL_STEPS = ("mcq", "select")
GENERATED, IMPORTED = "generated", "imported"  # origins as the funnel names them


def origin_label(origin: str | None) -> str:
    """`imported` for items ingested from an existing dataset, `generated` for the rest."""
    return IMPORTED if origin == IMPORTED else GENERATED


@dataclass
class FunnelRow:
    stage: str  # mcq | select
    check: str  # generation, attempts, reasoning, shortcut, bloom, difficulty, policy, ...
    entered: int = 0
    passed: int = 0
    held_out: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # why held out, with counts
    note: str = ""
    origin: str = ""  # generated | imported; "" when the row counts items of any origin

    def hold(self, reason: str, amount: int = 1) -> None:
        self.held_out += amount
        self.reasons[reason] = self.reasons.get(reason, 0) + amount

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["reasons"] = dict(sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0])))
        if not self.origin:  # rows of one origin only (stage 1, stage 3) say nothing of it
            del data["origin"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FunnelRow:
        return cls(
            stage=str(data.get("stage", "")),
            check=str(data.get("check", "")),
            entered=int(data.get("entered", 0)),
            passed=int(data.get("passed", 0)),
            held_out=int(data.get("held_out", 0)),
            reasons={str(k): int(v) for k, v in (data.get("reasons") or {}).items()},
            note=str(data.get("note", "")),
            origin=str(data.get("origin", "")),
        )


def reason_code(reason: str) -> str:
    """The code of a stored reason (`code: details` -> `code`)."""
    return reason.split(":", 1)[0].strip() or "unspecified"


def latest_run(store, step: str) -> dict[str, Any] | None:
    """The most recent finished (done) run record of `step`."""
    from store.queries import quote

    where = f"step = {quote(step)} AND status = 'done'"
    rows = store.rows("runs", where, ["run_id", "started_at", "counts_json"])
    return max(rows, key=lambda r: r["started_at"]) if rows else None


def stage1_row(store) -> FunnelRow | None:
    """Stage 1: generation attempts that became QAs, and those quarantined, by reason."""
    generated = store.count("qas", f"origin = '{ORIGIN_STAGE1}'")
    failures = store.rows("quarantine", f"stage = '{STAGE_STAGE1}'", ["reason"])
    if not generated and not failures:
        return None
    row = FunnelRow("stage1", "generation", entered=generated + len(failures), passed=generated)
    for failure in failures:
        row.hold(reason_code(failure["reason"]))
    return row


def lead_signal(reason: str) -> str:
    """What a graph hold-out reason names first (`graph_low_score: score 0.2 < 0.5:
    nli_contradict 0.9 (high), ...` -> `nli_contradict high`); a reviewer's reject by its
    code, whatever the signals."""
    if reason_code(reason) == REVIEWER_REJECTED:
        return "rejected by a reviewer"
    _, _, detail = reason.partition(": ")  # past the code
    _, _, detail = detail.partition(": ")  # past the score
    detail = detail.split(";", 1)[0]
    if detail.startswith("no signal on its weak side"):
        return "the graph, no weak signal"
    if detail.startswith("no signal available"):
        return "no signal available"
    first = detail.split(",", 1)[0].split()
    if len(first) >= 3 and first[2].startswith("("):
        return f"{first[0]} {first[2].strip('()')}"
    return "low score"


def graph_rows(store) -> list[FunnelRow]:
    """Stage 2: QAs the graph scored, kept and held out, by the signal that drove each down;
    one row per origin (generated QAs, imported ones)."""
    scored = store.rows("qas", "score IS NOT NULL", ["origin", "status", "reason"])
    rows: dict[str, FunnelRow] = {}
    for qa in scored:
        origin = origin_label(qa["origin"])
        row = rows.setdefault(origin, FunnelRow("graph", "consistency", origin=origin))
        row.entered += 1
        if qa["status"] == STATUS_HELD_OUT:
            row.hold(lead_signal(qa["reason"]))
        else:
            row.passed += 1
    return [rows[o] for o in (GENERATED, IMPORTED) if o in rows]


def funnel_rows(store, steps: tuple[str, ...] = FUNNEL_STEPS) -> list[FunnelRow]:
    """The whole funnel in pipeline order: stage 1 and the graph filter from the store, then
    the rows of the latest done run of each of `steps`."""
    first = stage1_row(store)
    rows: list[FunnelRow] = ([first] if first else []) + graph_rows(store)
    for step in steps:
        run = latest_run(store, step)
        if run is None:
            continue
        try:
            counts = json.loads(run["counts_json"] or "{}")
        except json.JSONDecodeError:
            continue
        rows.extend(FunnelRow.from_dict(r) for r in counts.get("funnel", []))
    return rows


def funnel_table(rows: list[FunnelRow], title: str = "Selection funnel"):
    """The rows as a rich Table (rich is imported here, not at module load)."""
    from rich.table import Table

    table = Table(title=title)
    for name, justify in (
        ("stage", "left"),
        ("check", "left"),
        ("entered", "right"),
        ("passed", "right"),
        ("held out", "right"),
        ("why (count)", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        reasons = ", ".join(f"{k} ({v})" for k, v in row.as_dict()["reasons"].items())
        if row.note:
            reasons = f"{reasons}; {row.note}" if reasons else row.note
        table.add_row(
            f"{row.stage} ({row.origin})" if row.origin else row.stage,
            row.check,
            f"{row.entered:,}",
            f"{row.passed:,}",
            f"{row.held_out:,}",
            reasons,
        )
    return table
