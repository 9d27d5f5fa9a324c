"""Pipeline: the stages in order with their last run, start/cancel/resume, ingest, live
progress and log, store counts, and the device/model status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.markup import escape
from textual.widgets import DataTable, Select, Static

from microvqa_tui.config import Settings
from microvqa_tui.errors import Cancelled, MicroVQAError
from microvqa_tui.progress import CancelToken
from microvqa_tui.services.status import (
    INGEST,
    Environment,
    StageStatus,
    default_ingest_path,
    last_ingest_path,
    stage_statuses,
)
from microvqa_tui.ui.messages import ProgressAdvanced, ProgressLog, ProgressStarted, TaskFinished
from microvqa_tui.ui.screens.base import BaseScreen
from microvqa_tui.ui.screens.modals import PathModal
from microvqa_tui.ui.widgets.engine import EngineBar
from microvqa_tui.ui.widgets.logpane import LogPane
from microvqa_tui.ui.widgets.progress import TaskProgress, format_duration
from microvqa_tui.ui.workers import UIProgress, fault_handler_on_the_terminal, run_blocking

STATUS_STYLE = {
    "done": "$success",
    "running": "$accent",
    "failed": "$error",
    "cancelled": "$warning",
    "interrupted": "$warning",
    "never run": "$text-muted",
}
COUNT_TABLES = (
    "figures",
    "captions",
    "qas",
    "mcqs",
    "signals",
    "edges",
    "dup_groups",
    "decisions",
    "quarantine",
)


def ago(then: datetime | None, now: datetime) -> str:
    if then is None:
        return ""
    if then.tzinfo is None:  # the store keeps UTC times without a zone
        then = then.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    seconds = (now - then).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} d ago"


class PipelineScreen(BaseScreen):
    MODE = "pipeline"
    AUTO_FOCUS = "#stages"
    HELP = (
        "The stages in order. Select one and press Enter (or s) to start it; a re-run resumes where the "
        "last run stopped. Ingest asks for a source path (default: the embedded sample). "
        "Cancelling stops at the next batch boundary: what was written stays consistent. "
        "e switches the engine (local, or Ray actors at the Ray address; empty = a local Ray) "
        "for the steps that can run on Ray; the others run locally."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "run_stage", "Start"),
        Binding("i", "ingest", "Ingest…"),
        Binding("c", "cancel", "Cancel"),
        Binding("e", "cycle_engine", "Engine"),
        Binding("R", "resume", "Resume"),
        Binding("m", "doctor", "Check env"),
        Binding("r", "refresh", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[StageStatus] = []
        self.counts: dict[str, int] = {}
        self.running: str | None = None
        self.on_ray = False  # the running step runs on Ray
        self.cancel_token: CancelToken | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="pipeline-body"):
            with Vertical(id="pipeline-main"):
                yield DataTable(id="stages", cursor_type="row", zebra_stripes=False)
                yield EngineBar(self.mvqa.settings.engine, id="engine-bar")
                yield Static("", id="stage-info")
                yield TaskProgress(id="pipeline-progress")
                yield LogPane(id="pipeline-log")
            with Vertical(id="pipeline-side"):
                yield Static("Store", classes="panel-title")
                yield Static("opening the store…", id="store-counts")
                yield Static("Device & models", classes="panel-title")
                yield Static("checking…", id="env-status")

    def on_mount(self) -> None:
        table = self.query_one("#stages", DataTable)
        table.add_column("", key="mark", width=1)
        table.add_column("stage", key="stage", width=26)
        table.add_column("status", key="status", width=11)
        table.add_column("last run", key="when", width=11)
        table.add_column("took", key="took", width=6)
        table.add_column("counts", key="counts", width=46)
        self.log_line("[$text-muted]Log of the stages run in this session.[/]")
        super().on_mount()
        self.check_environment()

    # ------------------------------------------------------------------ loading
    def load(self) -> None:
        store = self.store
        run_blocking(
            self,
            lambda: (stage_statuses(store), {t: store.count(t) for t in COUNT_TABLES}),
            on_success=self._show_statuses,
            group="pipeline-load",
            exclusive=True,
            context="reading the runs",
        )

    def _show_statuses(self, result: tuple[list[StageStatus], dict[str, int]]) -> None:
        self.statuses, self.counts = result
        counts = self.counts
        table = self.query_one("#stages", DataTable)
        cursor = table.cursor_row
        table.clear()
        now = self.mvqa.clock()
        for status in self.statuses:
            name = status.stage.name
            state = "running" if name == self.running else status.status
            state_markup = f"[{STATUS_STYLE.get(state, '$text')}]{escape(state)}[/]"
            took = ""
            if status.finished_at and status.started_at:
                took = format_duration((status.finished_at - status.started_at).total_seconds())
            table.add_row(
                "▶" if name == self.running else "",
                status.stage.title,
                Content.from_markup(state_markup),
                ago(status.started_at, now) if state != "running" else "now",
                took,
                _short_end(status.counts_text(), 46),
                key=name,
            )
        if self.statuses:
            table.move_cursor(row=min(max(cursor, 0), len(self.statuses) - 1))
        self._show_stage_info()
        lines = [f"{name:<11} {counts[name]:>9,}" for name in COUNT_TABLES]
        self.query_one("#store-counts", Static).update("\n".join(lines))

    @on(DataTable.RowSelected, "#stages")
    def _selected(self) -> None:
        self.action_run_stage()

    @on(DataTable.RowHighlighted, "#stages")
    def _highlighted(self) -> None:
        self._show_stage_info()

    def selected(self) -> StageStatus | None:
        table = self.query_one("#stages", DataTable)
        if not self.statuses or table.cursor_row < 0:
            return None
        return self.statuses[min(table.cursor_row, len(self.statuses) - 1)]

    def _show_stage_info(self) -> None:
        status = self.selected()
        info = self.query_one("#stage-info", Static)
        if status is None:
            info.update("")
            return
        lines = [f"[b]{escape(status.stage.title)}[/] — {escape(status.stage.description)}"]
        if status.message:
            lines.append(f"[$text-muted]last run:[/] {escape(status.message)}")
        if status.runs:
            lines.append(f"[$text-muted]{status.runs} run(s) recorded[/]")
        lines.append(self._engine_line(status))
        info.update(Content.from_markup("\n".join(lines)))

    def _engine_line(self, status: StageStatus) -> str:
        engines = status.stage.engines
        text = f"[$text-muted]runs on:[/] {escape(', '.join(engines))}"
        kind = self.query_one(EngineBar).kind
        if kind not in engines:
            text += f" [$warning](no {escape(kind)} engine: runs locally)[/]"
        return text

    @on(Select.Changed, "#engine")
    def _engine_changed(self) -> None:
        self._show_stage_info()

    def action_cycle_engine(self) -> None:
        self.query_one(EngineBar).cycle()

    def run_settings(self, name: str) -> tuple[Settings, str]:
        """The settings of a run of `name` with the chosen engine, and where it runs (for the
        log). A step without that engine (its `StepSpec.engines`) runs locally."""
        from microvqa_tui.pipeline.steps import STEPS_BY_NAME, with_engine

        bar, settings = self.query_one(EngineBar), self.mvqa.settings
        spec = STEPS_BY_NAME.get(name)
        if spec is None:  # ingest: no engine
            return settings, "local"
        kind = bar.kind if bar.kind in spec.engines else "local"
        if kind == "local":
            return with_engine(name, settings, kind, None), "local"
        return with_engine(name, settings, kind, bar.address), bar.describe()

    # ------------------------------------------------------------------ environment
    def check_environment(self) -> None:
        app = self.mvqa
        run_blocking(
            self,
            lambda: app.env_probe(app.settings),
            on_success=self._show_environment,
            group="env",
            exclusive=True,
            context="checking the device and models",
        )

    def _show_environment(self, env: Environment) -> None:
        lines = [f"[b]{escape(env.device)}[/] [$text-muted]{escape(env.device_detail)}[/]", ""]
        for row in env.models:
            mark = "[$success]✓[/]" if row.present else "[$error]✗[/]"
            name = _short_end(row.name or row.detail, 18) or "(none)"
            state = row.size if row.present else "missing"
            lines.append(
                f"{mark} {escape(row.role):<5} {escape(name):<18} [$text-muted]{escape(state)}[/]"
            )
        missing = [row.role for row in env.models if not row.present]
        if missing:
            lines += [
                "",
                f"[$text-muted]missing models: `microvqa models pull` ({', '.join(missing)})[/]",
            ]
        self.query_one("#env-status", Static).update(Content.from_markup("\n".join(lines)))

    def action_doctor(self) -> None:
        from microvqa_tui.services.status import doctor_lines

        settings = self.mvqa.settings
        self.log_line("[b]environment check[/] (imports torch: a few seconds)…")
        run_blocking(
            self,
            lambda: doctor_lines(settings),
            on_success=lambda lines: [self.log_line(escape(line)) for line in lines],
            group="doctor",
            exclusive=True,
            context="environment check",
        )

    # ------------------------------------------------------------------ running
    def action_run_stage(self) -> None:
        status = self.selected()
        if status is None:
            return
        if status.stage.name == INGEST:
            self.action_ingest()
        else:
            self.start(status.stage.name)

    def action_ingest(self) -> None:
        if self._busy():
            return
        default = last_ingest_path(self.statuses) or default_ingest_path()
        self.app.push_screen(
            PathModal(
                "Ingest a source",
                "A folder of images with captions, a JSONL/CSV manifest, Parquet files or "
                "WebDataset shards. Re-ingesting adds only what is new.",
                default,
            ),
            callback=lambda path: self.start(INGEST, path=path) if path else None,
        )

    def action_resume(self) -> None:
        status = self.selected()
        if status is None:
            return
        if status.stage.name == INGEST:
            path = last_ingest_path(self.statuses)
            if path is None:
                self.notify("no earlier ingest to resume: press i to ingest", severity="warning")
                return
            self.start(INGEST, path=path)
        else:
            self.start(status.stage.name)

    def action_cancel(self) -> None:
        if self.running is None or self.cancel_token is None:
            self.notify("nothing is running")
            return
        self.cancel_token.cancel()
        self.log_line(f"[$warning]cancelling {escape(self.running)} at the next batch boundary…[/]")

    def _busy(self) -> bool:
        if self.running is not None:
            self.notify(f"{self.running} is running: cancel it first (c)", severity="warning")
            return True
        return False

    def start(self, name: str, *, path: str | None = None) -> None:
        """Run a stage in a worker; progress and the outcome come back as messages."""
        if self._busy():
            return
        self.running = name
        self.cancel_token = token = CancelToken()
        progress = UIProgress(self, name)
        store = self.store
        settings, where = self.run_settings(name)
        self.on_ray = where != "local"
        if self.on_ray:
            fault_handler_on_the_terminal()  # else ray.init fails under Textual's stderr
        self.query_one(TaskProgress).start(f"{name}: starting…", None)
        place = path or (where if where != "local" else "")
        self.log_line(f"[b]{escape(name)}[/] started" + (f" on {escape(place)}" if place else ""))
        if self.statuses:
            self._show_statuses((self.statuses, self.counts))

        def work() -> None:
            try:
                if name == INGEST:
                    from microvqa_tui.ingest import ingest_source

                    report = ingest_source(
                        store, path, settings.ingest, progress=progress, cancel=token
                    )
                else:
                    from microvqa_tui.pipeline.steps import run_step

                    report = run_step(name, store, settings, progress=progress, cancel=token)
                progress.flush()
                self.post_message(TaskFinished(name, report=report.to_dict()))
            except Cancelled as exc:
                progress.flush()
                partial = getattr(exc, "report", None)
                self.post_message(
                    TaskFinished(
                        name, cancelled=True, report=partial.to_dict() if partial else None
                    )
                )
            except Exception as exc:  # every error ends in the one error path
                self.post_message(TaskFinished(name, error=exc))

        self.run_worker(work, name=f"stage-{name}", group="stage", thread=True, exit_on_error=False)

    # ------------------------------------------------------------------ progress messages
    def on_progress_started(self, message: ProgressStarted) -> None:
        self.query_one(TaskProgress).start(message.description, message.total)

    def on_progress_advanced(self, message: ProgressAdvanced) -> None:
        self.query_one(TaskProgress).advance(message.done)

    def on_progress_log(self, message: ProgressLog) -> None:
        self.log_line(escape(message.line))

    def on_task_finished(self, message: TaskFinished) -> None:
        name = message.task
        self.running = None
        self.cancel_token = None
        progress = self.query_one(TaskProgress)
        if message.cancelled:
            progress.finish(f"{name}: cancelled — completed batches are saved; R resumes")
            self.log_line(
                f"[$warning]{escape(name)} cancelled[/] {escape(_summary(message.report))}"
            )
            self.notify(f"{name} cancelled; completed batches are saved", severity="warning")
        elif message.error is not None:
            progress.finish(f"{name}: failed")
            text = (
                str(message.error)
                if isinstance(message.error, MicroVQAError)
                else (f"{type(message.error).__name__}: {message.error}")
            )
            self.log_line(f"[$error]{escape(name)} failed:[/] {escape(text)}")
            self.mvqa.show_error(message.error, context=f"{name} failed")
        else:
            summary = _summary(message.report)
            progress.finish(f"{name}: done — {summary}")
            self.log_line(f"[$success]{escape(name)} done[/] {escape(summary)}")
            self.notify(f"{name} finished: {summary}", title="Pipeline")
        if self.on_ray:  # Ray's native code logs errors straight to the terminal: paint over
            self.on_ray = False
            self.app.refresh(layout=True)
        self.mvqa.data_changed()
        self.loaded_version = self.mvqa.data_version
        self.load()

    def log_line(self, markup: str) -> None:
        self.query_one("#pipeline-log", LogPane).write(markup)


def _numbers(data: dict[str, Any], prefix: str = "") -> list[tuple[str, int | float]]:
    """The numeric entries of a report, one nesting level flattened ("signals written"); a
    level of per-member counts (embed's spaces) summed over the members ("embedded")."""
    skip = {"run_id", "kind", "source", "cancelled", "quarantined", "seed"}
    items: list[tuple[str, int | float]] = []
    for key, value in data.items():
        if key in skip or isinstance(value, bool):
            continue
        name = f"{prefix}{key}".replace("_", " ")
        if isinstance(value, int | float):
            items.append((name, value))
        elif isinstance(value, dict) and not prefix:
            nested = bool(value) and all(isinstance(v, dict) for v in value.values())
            items.extend(_totals(value.values()) if nested else _numbers(value, prefix=f"{key} "))
    return items


def _totals(members: Any) -> list[tuple[str, int | float]]:
    """Each numeric count summed over the members (dicts of counts)."""
    totals: dict[str, int | float] = {}
    for member in members:
        for key, value in member.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                totals[key] = totals.get(key, 0) + value
    return [(key.replace("_", " "), value) for key, value in totals.items()]


def _summary(report: dict[str, Any]) -> str:
    items = _numbers(report)
    if report.get("up_to_date"):  # e.g. the graph: nothing new since its last run
        items = [(name, value) for name, value in items if value]  # what this run measured
    numbers = ", ".join(
        f"{name} {value:,}" if isinstance(value, int) else f"{name} {value:,.1f}"
        for name, value in items[:6]
    )
    return f"up to date, nothing retrained: {numbers}" if report.get("up_to_date") else numbers


def _short_end(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
