"""`microvqa stats` and `microvqa doctor`."""

from __future__ import annotations

from rich.table import Table

from microvqa_tui.cli import JsonFlag, app, console, emit_json, state


@app.command()
def stats(as_json: JsonFlag = False) -> None:
    """Row counts per table and quarantine counts per reason."""
    settings = state.settings()
    from microvqa_tui.services.stats import store_stats
    from store import open_store

    report = store_stats(open_store(settings.store))
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
def doctor(as_json: JsonFlag = False) -> None:
    """Check Python, torch/CUDA/GPU, the llama.cpp build and which models are present."""
    from microvqa_tui.doctor import run_checks

    checks = run_checks(state.settings())
    if as_json:
        emit_json({"ok": all(c.ok for c in checks), "checks": [c.to_dict() for c in checks]})
        return
    table = Table("check", "ok", "detail", title="microvqa doctor")
    for check in checks:
        table.add_row(check.name, "[green]ok[/]" if check.ok else "[red]missing[/]", check.detail)
    console.print(table)
