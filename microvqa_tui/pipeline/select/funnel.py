"""The selection funnel: for each stage and check, how many items entered, passed and were
held out, and why.

Each step stores its rows in its run record (`counts_json["funnel"]`, a list of
`{stage, check, entered, passed, held_out, reasons}`); `funnel_rows(store)` gathers the
latest rows of the MCQ and selection steps for the CLI and the TUI, and `funnel_table`
renders them with rich.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

FUNNEL_STEPS = ("mcq", "select")


@dataclass
class FunnelRow:
    stage: str  # mcq | select
    check: str  # generation, attempts, reasoning, shortcut, bloom, difficulty, policy, ...
    entered: int = 0
    passed: int = 0
    held_out: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # why held out, with counts
    note: str = ""

    def hold(self, reason: str, amount: int = 1) -> None:
        self.held_out += amount
        self.reasons[reason] = self.reasons.get(reason, 0) + amount

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["reasons"] = dict(sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0])))
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
        )


def reason_code(reason: str) -> str:
    """The code of a stored reason (`code: details` -> `code`)."""
    return reason.split(":", 1)[0].strip() or "unspecified"


def count_reasons(reasons: list[str]) -> dict[str, int]:
    return dict(Counter(reason_code(r) for r in reasons))


def latest_run(store, step: str) -> dict[str, Any] | None:
    """The most recent finished (done) run record of `step`."""
    from store.queries import quote

    where = f"step = {quote(step)} AND status = 'done'"
    total = store.count("runs", where)
    if not total:
        return None
    rows = store.page(
        "runs", where=where, columns=["run_id", "started_at", "counts_json"], limit=total
    )
    return max(rows, key=lambda r: r["started_at"])


def funnel_rows(store, steps: tuple[str, ...] = FUNNEL_STEPS) -> list[FunnelRow]:
    """The funnel of the latest done run of each step, in pipeline order."""
    rows: list[FunnelRow] = []
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
            row.stage,
            row.check,
            f"{row.entered:,}",
            f"{row.passed:,}",
            f"{row.held_out:,}",
            reasons,
        )
    return table
