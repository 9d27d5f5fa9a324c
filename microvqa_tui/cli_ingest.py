"""`microvqa ingest PATH`: figure–caption pairs into the store, with a progress bar."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from microvqa_tui.cli import JsonFlag, app, console, emit_json, state
from microvqa_tui.errors import Cancelled
from microvqa_tui.progress import CancelToken, NullProgress, ProgressReporter

if TYPE_CHECKING:  # the ingest package pulls in lancedb: load it only when a command runs
    from microvqa_tui.config import Settings
    from microvqa_tui.ingest import IngestReport


class SourceKind(StrEnum):
    folder = "folder"
    manifest = "manifest"
    parquet = "parquet"
    webdataset = "webdataset"


class RateColumn(ProgressColumn):
    """Items per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None and task.elapsed and task.completed:
            speed = task.completed / task.elapsed
        if speed is None:
            return Text("– items/s", style="progress.data.speed")
        return Text(f"{speed:,.1f} items/s", style="progress.data.speed")


class RichProgress:
    """A ProgressReporter drawing a rich progress bar (description, bar, count, rate, ETA)."""

    def __init__(self, target: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            RateColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=target,
            transient=False,
        )
        self.task_id = None

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def start(self, description: str, total: int | None) -> None:
        if self.task_id is not None:
            self.progress.update(self.task_id, visible=False)
        self.task_id = self.progress.add_task(description, total=total)

    def advance(self, amount: int = 1) -> None:
        if self.task_id is not None:
            self.progress.advance(self.task_id, amount)

    def log(self, message: str) -> None:
        self.progress.console.print(f"[dim]{message}[/]", highlight=False)


@contextmanager
def _cancel_on_sigint(cancel: CancelToken, target: Console) -> Iterator[None]:
    """First Ctrl-C: finish the current batch and stop cleanly; second: interrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if cancel.cancelled:
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        cancel.cancel()
        target.print("[yellow]stopping after the current batch… (Ctrl-C again to interrupt)[/]")

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _summary(report: IngestReport) -> list[object]:
    from microvqa_tui.ingest.reasons import describe

    rate = report.read / report.elapsed_s if report.elapsed_s else 0.0
    head = Text.assemble(
        ("ingest ", "bold"),
        (report.kind, "bold cyan"),
        f" {report.source}\n",
        (
            f"{report.read:,} records read in {report.elapsed_s:.1f} s ({rate:,.1f}/s), "
            f"run {report.run_id}",
            "dim",
        ),
    )
    rows = Table("table", "new rows", title="written", title_justify="left")
    rows.columns[1].justify = "right"
    rows.add_row("figures", f"{report.figures_new:,}")
    rows.add_row("captions", f"{report.captions_new:,}")
    rows.add_row("qas", f"{report.qas_new:,}")
    rows.add_row("mcqs", f"{report.mcqs_new:,}")
    rows.add_row("quarantine", f"{report.quarantine_new:,}")
    parts: list[object] = [head, rows]
    if report.quarantined:
        bad = Table("reason", "count", "meaning", title="quarantined", title_justify="left")
        bad.columns[1].justify = "right"
        for reason, count in report.quarantined.items():
            bad.add_row(reason, f"{count:,}", describe(reason))
        bad.add_row("total", f"{report.quarantined_total:,}", "", style="bold")
        parts.append(bad)
    else:
        parts.append(Text("nothing quarantined", style="green"))
    return parts


@app.command()
def ingest(
    path: Annotated[
        str,
        typer.Argument(
            help="A folder of images with .txt/.json captions, a JSONL/CSV manifest, "
            "Parquet file(s) or WebDataset .tar shard(s); a folder or a glob works too."
        ),
    ],
    kind: Annotated[
        SourceKind | None,
        typer.Option("--kind", help="Force the source kind instead of detecting it."),
    ] = None,
    allow_outside_paths: Annotated[
        bool,
        typer.Option(
            "--allow-outside-paths",
            help="Let a manifest name image files outside its own folder "
            "(ingest.allow_outside_paths).",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Ingest figure–caption pairs (and MicroVQA-style MCQs from Parquet) into the store.

    Bad records are quarantined with a reason, never fatal.
    Re-running adds nothing already there, so an interrupted ingest resumes where it stopped.
    """
    settings = state.settings()
    if allow_outside_paths:
        ingest_settings = settings.ingest.model_copy(update={"allow_outside_paths": True})
        settings = settings.model_copy(update={"ingest": ingest_settings})
    store = state.open_store(settings, create=True)
    cancel = CancelToken()
    err = Console(stderr=True)
    chosen = kind.value if kind is not None else None
    with _cancel_on_sigint(cancel, err):
        if as_json:
            reporter: ProgressReporter = NullProgress()
            report = _run(store, Path(path), settings, chosen, reporter, cancel, as_json=True)
        else:
            with RichProgress(console) as bar:
                report = _run(store, Path(path), settings, chosen, bar, cancel, as_json=False)
    if as_json:
        emit_json(report.to_dict())
        return
    console.print(*_summary(report))


def _run(store, path, settings: Settings, kind, reporter, cancel, *, as_json: bool) -> IngestReport:
    try:
        from microvqa_tui.ingest import ingest_source

        return ingest_source(
            store, path, settings.ingest, kind=kind, progress=reporter, cancel=cancel
        )
    except Cancelled as exc:
        partial = getattr(exc, "report", None)
        if partial is not None:
            if as_json:
                emit_json({**partial.to_dict(), "error": str(exc)})
            else:
                console.print(*_summary(partial))
        raise
