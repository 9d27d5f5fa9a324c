"""`microvqa stats` and `microvqa doctor`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from microvqa_tui.cli import JsonFlag, app, console, emit_json, state


@app.command()
def stats(as_json: JsonFlag = False) -> None:
    """Row counts per table and quarantine counts per reason."""
    settings = state.settings()
    from microvqa_tui.services.stats import store_stats

    report = store_stats(state.open_store(settings))
    if as_json:
        emit_json(report)
        return
    table = Table("table", "rows", title=f"store {settings.store}")
    for name, rows in report["tables"].items():
        table.add_row(name, f"{rows:,}")
    console.print(table)
    if report["quarantine"]:
        reasons = Table("stage", "reason", "count", title="quarantine")
        for item in report["quarantine"]:
            reasons.add_row(item["stage"], item["reason"], f"{item['count']:,}")
        console.print(reasons)
    if report["last_runs"]:
        runs = Table("step", "status", "started", "run id", title="latest runs")
        for run in report["last_runs"]:
            runs.add_row(run["step"], run["status"], str(run["started_at"])[:19], run["run_id"])
        console.print(runs)


@app.command()
def doctor(
    repair: Annotated[
        bool,
        typer.Option(
            "--repair", help="Remove duplicate keys (one row kept per key); accept rollbacks."
        ),
    ] = False,
    restore: Annotated[
        tuple[str, int] | None,
        typer.Option(
            "--restore",
            help="TABLE VERSION: make an earlier version of a table the newest again.",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Check Python, torch/CUDA/GPU, the llama.cpp build, the models, and read the whole store."""
    from microvqa_tui.doctor import repair_store, restore_table, run_checks

    settings = state.settings()
    actions = []
    if restore is not None and restore[0] is not None:
        actions.append(restore_table(settings, restore[0], int(restore[1])))
    if repair:
        actions.extend(repair_store(settings) or ["nothing to repair"])
    checks = run_checks(settings)
    if as_json:
        emit_json(
            {
                "ok": all(c.ok for c in checks),
                "checks": [c.to_dict() for c in checks],
                "actions": actions,
            }
        )
        return
    for action in actions:
        console.print(f"[bold]done[/]: {action}")
    table = Table("check", "ok", "detail", title="microvqa doctor")
    for check in checks:
        table.add_row(check.name, "[green]ok[/]" if check.ok else "[red]problem[/]", check.detail)
    console.print(table)
