"""Stats: selection funnel, graph-score histogram, Bloom / task / tier / review distributions
and the counts of each step's last run, as terminal charts."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical, VerticalScroll
from textual.content import Content
from textual.markup import escape
from textual.widgets import Static

from microvqa_tui.services.insights import Stats, compute_stats
from microvqa_tui.ui.screens.base import BaseScreen
from microvqa_tui.ui.widgets.charts import BarChart, Histogram
from microvqa_tui.ui.workers import run_blocking


def panel(title: str, *children, id: str) -> Vertical:
    box = Vertical(*children, id=id, classes="stats-panel")
    box.border_title = title
    return box


class StatsScreen(BaseScreen):
    MODE = "stats"
    HELP = (
        "Where the items went: the funnel from figures to accepted MCQs, the distribution of "
        "graph consistency scores (qas.score), Bloom levels, task types, difficulty tiers, "
        "review decisions, and the counts of each step's last run."
    )
    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "refresh", "Refresh")]

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="stats-body"), Grid(id="stats-grid"):
            yield panel("Selection funnel", BarChart(id="chart-funnel"), id="p-funnel")
            yield panel(
                "Graph score (qas.score)",
                Histogram(id="chart-scores"),
                Static("", id="score-summary"),
                id="p-scores",
            )
            yield panel("Bloom level (MCQs)", BarChart(id="chart-bloom"), id="p-bloom")
            yield panel(
                "Task type",
                Static("QAs", classes="chart-caption"),
                BarChart(id="chart-qa-tasks"),
                Static("MCQs", classes="chart-caption"),
                BarChart(id="chart-mcq-tasks"),
                id="p-tasks",
            )
            yield panel(
                "Difficulty and review",
                BarChart(id="chart-tiers"),
                Static("", classes="chart-gap"),
                BarChart(id="chart-reviews"),
                id="p-tiers",
            )
            yield panel("Last run of each step", Static("", id="run-counts"), id="p-runs")

    def load(self) -> None:
        store = self.store
        run_blocking(
            self,
            lambda: compute_stats(store),
            on_success=self._show,
            group="stats",
            exclusive=True,
            context="computing the statistics",
        )

    def _show(self, stats: Stats) -> None:
        self.stats = stats
        self.query_one("#chart-funnel", BarChart).data = stats.funnel
        self.query_one("#chart-scores", Histogram).counts = stats.score_hist
        summary = stats.score_summary
        text = (
            f"n {summary['n']:,} · mean {summary['mean']:.2f} · median {summary['median']:.2f}"
            f" · range {summary['min']:.2f}–{summary['max']:.2f}"
            if summary
            else "no graph scores yet: run the graph step"
        )
        self.query_one("#score-summary", Static).update(
            Content.from_markup(f"[$text-muted]{escape(text)}[/]")
        )
        self.query_one("#chart-bloom", BarChart).data = stats.bloom
        self.query_one("#chart-qa-tasks", BarChart).data = [
            (k.replace("_", " "), v) for k, v in stats.qa_tasks
        ]
        self.query_one("#chart-mcq-tasks", BarChart).data = [
            (k.replace("_", " "), v) for k, v in stats.mcq_tasks
        ]
        self.query_one("#chart-tiers", BarChart).data = stats.tiers
        self.query_one("#chart-reviews", BarChart).data = stats.reviews
        lines = []
        for step, status, counts in stats.run_counts:
            shown = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in list(counts.items())[:5])
            lines.append(
                f"[b]{escape(step):<8}[/] [$text-muted]{escape(status):<9}[/] {escape(shown)}"
            )
        if stats.quarantine:
            quarantined = ", ".join(f"{escape(k)} {v:,}" for k, v in stats.quarantine)
            lines.append(f"[$warning]quarantined[/] {quarantined}")
        self.query_one("#run-counts", Static).update(
            Content.from_markup("\n".join(lines) or "[$text-muted]no runs recorded yet[/]")
        )
