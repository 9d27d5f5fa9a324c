"""Export: format, split policy, what to include and the output folder; runs the export
pipeline in a worker with progress, and shows the folder written."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.markup import escape
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from microvqa_tui.errors import Cancelled
from microvqa_tui.progress import CancelToken
from microvqa_tui.ui.exporting import FORMATS, SPLIT_HELP, SPLITS, ExportOptions, written_folder
from microvqa_tui.ui.messages import ProgressAdvanced, ProgressLog, ProgressStarted, TaskFinished
from microvqa_tui.ui.screens.base import BaseScreen
from microvqa_tui.ui.widgets.logpane import LogPane
from microvqa_tui.ui.widgets.progress import TaskProgress
from microvqa_tui.ui.workers import UIProgress, run_blocking

FORMAT_HELP = {
    "parquet": "Parquet, MicroVQA++ layout (images embedded)",
    "jsonl": "JSONL records + an images/ folder",
    "llava": "LLaVA conversation JSON + images/",
}
INCLUDES = (
    ("include_held_out", "held-out MCQs too (not rejected by a person)", False),
    ("include_flagged", "flagged MCQs too (not rejected by a person)", False),
)
DEFAULT_OUT = "microvqa-export"


class ExportScreen(BaseScreen):
    MODE = "export"
    HELP = (
        "Write the dataset: format, split fractions (an article's figures, a figure's items "
        "and a duplicate group always share a split, so nothing leaks), what to include and "
        "the folder. Accepted MCQs, and kept ones nobody rejected, are exported with their "
        "images and chain of thought; a dataset card is written with the data."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+e", "export", "Export"),
        Binding("ctrl+k", "cancel", "Cancel export"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.available: bool | None = None
        self.cancel_token: CancelToken | None = None
        self.last_report: dict | None = None

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="export-body"), Vertical(id="export-form"):
            yield Static("", id="export-availability")
            yield Label("Format", classes="form-label")
            yield Select(
                [(FORMAT_HELP[f], f) for f in FORMATS],
                value="parquet",
                allow_blank=False,
                id="export-format",
            )
            yield Label(
                "Splits (leakage-free: by article, figure and duplicate group)",
                classes="form-label",
            )
            with Horizontal(classes="form-row"):
                yield Select(
                    [(SPLIT_HELP[s], s) for s in SPLITS],
                    value=SPLITS[0],
                    allow_blank=False,
                    id="export-split",
                )
                yield Input(
                    "0", placeholder="seed", type="integer", id="export-seed", tooltip="split seed"
                )
            yield Label(
                "Include (accepted, and kept-not-rejected MCQs always)", classes="form-label"
            )
            for key, label, value in INCLUDES:
                yield Checkbox(label, value=value, id=f"export-{key}", compact=True)
            yield Static("", id="export-preview")
            yield Label("Output folder", classes="form-label")
            yield Input(DEFAULT_OUT, id="export-out")
            yield Checkbox(
                "overwrite the folder if it exists",
                value=False,
                id="export-overwrite",
                compact=True,
            )
            with Horizontal(id="export-buttons"):
                yield Button("Export (Ctrl+E)", variant="primary", id="export-run")
                yield Button("Cancel (Ctrl+K)", id="export-cancel", disabled=True)
            yield TaskProgress(id="export-progress")
            yield Static("", id="export-result")
            yield LogPane(id="export-log", max_lines=200)

    def load(self) -> None:
        from microvqa_tui.ui.exporting import exporter

        run_blocking(
            self,
            lambda: exporter() is not None,
            on_success=self._set_available,
            group="export-check",
            exclusive=True,
            context="looking for the export step",
        )

    def _set_available(self, available: bool) -> None:
        self.available = available
        note = self.query_one("#export-availability", Static)
        if available:
            note.update(
                Content.from_markup(
                    "[$text-muted]Writes the dataset and its card to a new folder.[/]"
                )
            )
        else:
            note.update(
                Content.from_markup(
                    "[$warning]export not available in this build[/] "
                    "[$text-muted](microvqa_tui.pipeline.export is missing)[/]"
                )
            )
        self.query_one("#export-run", Button).disabled = not available
        self.update_preview()

    def options(self) -> ExportOptions:
        def checked(key: str) -> bool:
            return self.query_one(f"#export-{key}", Checkbox).value

        seed = self.query_one("#export-seed", Input).value.strip()
        return ExportOptions(
            out_dir=self.query_one("#export-out", Input).value.strip(),
            format=str(self.query_one("#export-format", Select).value),
            split=str(self.query_one("#export-split", Select).value),
            seed=int(seed) if seed.lstrip("-").isdigit() else 0,
            include_held_out=checked("include_held_out"),
            include_flagged=checked("include_flagged"),
            overwrite=checked("overwrite"),
        )

    @on(Checkbox.Changed)
    def _include_changed(self, event: Checkbox.Changed) -> None:
        if event.checkbox.id in ("export-include_held_out", "export-include_flagged"):
            self.update_preview()

    def update_preview(self) -> None:
        from microvqa_tui.ui.exporting import preview

        if not self.available or self.mvqa.store is None:
            return
        store, options = self.store, self.options()
        run_blocking(
            self,
            lambda: preview(store, options),
            on_success=self._show_preview,
            group="export-preview",
            exclusive=True,
            context="counting what the export takes",
        )

    def _show_preview(self, info: dict | None) -> None:
        widget = self.query_one("#export-preview", Static)
        if info is None:
            widget.update("")
            return
        excluded = ", ".join(f"{k} {v:,}" for k, v in info["excluded"].items() if v)
        text = f"[b]{info['mcqs']:,}[/] MCQs on {info['figures']:,} figures would be exported"
        if excluded:
            text += f" [$text-muted]· left out: {escape(excluded)}[/]"
        widget.update(Content.from_markup(text))

    @on(Button.Pressed, "#export-run")
    def _run_pressed(self) -> None:
        self.action_export()

    @on(Button.Pressed, "#export-cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    def action_export(self) -> None:
        if not self.available:
            self.notify("export not available in this build", severity="warning")
            return
        if self.cancel_token is not None:
            self.notify("an export is running", severity="warning")
            return
        options = self.options()
        if not options.out_dir:
            self.notify("type the output folder first", severity="warning")
            return
        from microvqa_tui.ui.exporting import run_export

        store, settings = self.store, self.mvqa.settings
        self.cancel_token = token = CancelToken()
        progress = UIProgress(self, "export")
        self.query_one("#export-cancel", Button).disabled = False
        self.query_one("#export-run", Button).disabled = True
        self.query_one(TaskProgress).start("export: starting…", None)
        self.query_one("#export-result", Static).update("")

        def work() -> None:
            try:
                report = run_export(store, settings, options, progress=progress, cancel=token)
                progress.flush()
                report.setdefault("out_dir", written_folder(report, options))
                self.post_message(TaskFinished("export", report=report))
            except Cancelled:
                self.post_message(TaskFinished("export", cancelled=True))
            except Exception as exc:
                self.post_message(TaskFinished("export", error=exc))

        self.run_worker(work, name="export", group="export", thread=True, exit_on_error=False)

    def action_cancel(self) -> None:
        if self.cancel_token is None:
            self.notify("no export is running")
            return
        self.cancel_token.cancel()

    def on_progress_started(self, message: ProgressStarted) -> None:
        self.query_one(TaskProgress).start(message.description, message.total)

    def on_progress_advanced(self, message: ProgressAdvanced) -> None:
        self.query_one(TaskProgress).advance(message.done)

    def on_progress_log(self, message: ProgressLog) -> None:
        self.query_one(LogPane).write(escape(message.line))

    def on_task_finished(self, message: TaskFinished) -> None:
        self.cancel_token = None
        self.query_one("#export-cancel", Button).disabled = True
        self.query_one("#export-run", Button).disabled = not self.available
        progress = self.query_one(TaskProgress)
        result = self.query_one("#export-result", Static)
        if message.cancelled:
            progress.finish("export cancelled: nothing was published")
            self.notify("export cancelled", severity="warning")
        elif message.error is not None:
            progress.finish("export failed")
            self.mvqa.show_error(message.error, context="export failed")
        else:
            self.last_report = message.report
            report = message.report
            folder = str(report.get("out_dir", ""))
            progress.finish("export done")
            parts = [f"{k} {v:,}" for k, v in (report.get("splits") or {}).items()]
            if isinstance(report.get("images"), int):
                parts.append(f"images {report['images']:,}")
            if isinstance(report.get("files"), list):
                parts.append(f"{len(report['files'])} files")
            parts += [
                f"{k.replace('_', ' ')} {v:,}"
                for k, v in report.items()
                if isinstance(v, int) and not isinstance(v, bool) and k not in ("images", "seed")
            ]
            counts = " · ".join(parts)
            result.update(
                Content.from_markup(
                    f"[b $success]Wrote[/] {escape(_display(folder))}\n[$text-muted]{escape(counts)}[/]"
                )
            )
            self.notify(f"dataset written to {folder}", title="Export")
            self.mvqa.data_changed()  # the export recorded a run


def _display(folder: str) -> str:
    try:
        return str(Path(folder).resolve().relative_to(Path.cwd()))
    except ValueError:
        return folder
