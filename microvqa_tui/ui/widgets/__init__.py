"""Reusable widgets of the workbench."""

from microvqa_tui.ui.widgets.charts import BarChart, Histogram
from microvqa_tui.ui.widgets.detail import DetailView, FigureImage
from microvqa_tui.ui.widgets.filters import FilterBar
from microvqa_tui.ui.widgets.nav import NavBar
from microvqa_tui.ui.widgets.progress import TaskProgress

__all__ = [
    "BarChart",
    "DetailView",
    "FigureImage",
    "FilterBar",
    "Histogram",
    "NavBar",
    "TaskProgress",
]
