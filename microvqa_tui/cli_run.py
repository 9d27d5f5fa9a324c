"""`microvqa run STEP`: run one pipeline step on the store with a progress bar."""

from __future__ import annotations

from typing import Annotated, Literal

import typer
from rich.table import Table

from microvqa_tui.cli import JsonFlag, app, console, emit_json, state
from microvqa_tui.cli_progress import RichProgress
from microvqa_tui.pipeline.steps import STEPS, run_step, with_engine
from microvqa_tui.progress import CancelToken

STEP_HELP = "; ".join(f"{s.name}: {s.description}" for s in STEPS)
# Steps after which the selection funnel is printed: they are the ones that move items in it.
FUNNEL_AFTER = ("graph", "mcq", "select")


@app.command("run")
def run_command(
    step: Annotated[str, typer.Argument(help=f"The step to run. {STEP_HELP}")],
    engine: Annotated[
        Literal["local", "ray"] | None,
        typer.Option(help="Where batches run: local (this process) or ray (Ray actors)."),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to use (implies --engine ray); default: a local Ray."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run one pipeline step; a re-run resumes where the last one stopped."""
    settings = state.settings()
    if engine or ray_address:
        settings = with_engine(step, settings, engine or "ray", ray_address)
    store = state.open_store(settings)
    progress = RichProgress(console, enabled=not as_json)
    cancel = CancelToken()
    with progress.running():
        try:
            report = run_step(step, store, settings, progress=progress, cancel=cancel)
        except KeyboardInterrupt:
            cancel.cancel()
            raise
    summary = report.to_dict()
    if as_json:
        emit_json(summary)
        return
    print_summary(f"{step} finished", summary)
    if step in FUNNEL_AFTER:
        print_funnel(store)


@app.command("funnel")
def funnel_command(as_json: JsonFlag = False) -> None:
    """The selection funnel: per stage and check, items entered, passed and held out, and why."""
    store = state.open_store()
    if as_json:
        from microvqa_tui.common.funnel import funnel_rows

        emit_json({"funnel": [row.as_dict() for row in funnel_rows(store)]})
        return
    print_funnel(store)


def print_funnel(store) -> None:
    from microvqa_tui.common.funnel import funnel_rows, funnel_table

    rows = funnel_rows(store)
    if not rows:
        console.print("the funnel is empty: no stage has run on this store yet")
        return
    console.print(funnel_table(rows))


def print_summary(title: str, summary: dict) -> None:
    """A report dict as tables: scalars in one, each nested mapping in its own."""
    table = Table("", "", title=title, show_header=False)
    nested: dict[str, dict] = {}
    for key, value in summary.items():
        if isinstance(value, dict):
            nested[key] = value
        elif isinstance(value, list):
            if key != "funnel":  # printed as its own table
                table.add_row(key, f"{len(value)} items")
        else:
            table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    console.print(table)
    for key, mapping in nested.items():
        if not mapping:
            continue
        sub = Table(key, "value")
        for name, value in mapping.items():
            sub.add_row(str(name), f"{value:,}" if isinstance(value, int) else str(value))
        console.print(sub)
