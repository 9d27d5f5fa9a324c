"""The Pipeline screen's engine choice: where a step's batches run (in this process, or on
Ray actors) and which Ray cluster, defaulting from the settings' `engine` section.

The widget only collects the choice; which steps can use it is each step's `StepSpec.engines`
(shown through `services.status.Stage.engines`), and the settings of a run are made by the
core's `pipeline.steps.with_engine`.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Input, Label, Select

from microvqa_tui.config.engine import EngineSettings

ENGINE_CHOICES = (("local (this process)", "local"), ("ray (Ray actors)", "ray"))


class EngineBar(Horizontal):
    """An engine Select and the Ray address; the address only applies to (and is only
    editable with) the ray engine. Empty address = a local Ray with this machine's cores."""

    def __init__(self, cfg: EngineSettings, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="engine-bar")
        self.cfg = cfg

    def compose(self) -> ComposeResult:
        yield Label("engine", classes="engine-label")
        yield Select(
            ENGINE_CHOICES, value=self.cfg.kind, allow_blank=False, compact=True, id="engine"
        )
        yield Label("Ray address", classes="engine-label")
        yield Input(
            self.cfg.ray_address,
            placeholder=self._local_ray(),
            compact=True,
            id="ray-address",
            disabled=self.cfg.kind != "ray",
        )

    def _local_ray(self) -> str:
        cpus = f"{self.cfg.local_cpus} CPUs" if self.cfg.local_cpus else "all cores"
        return f"empty = start a local Ray ({cpus})"

    @property
    def kind(self) -> str:
        return str(self.query_one("#engine", Select).value)

    @property
    def address(self) -> str:
        return self.query_one("#ray-address", Input).value.strip()

    def cycle(self) -> None:
        """Switch to the next engine (the `e` key)."""
        kinds = [value for _, value in ENGINE_CHOICES]
        self.query_one("#engine", Select).value = kinds[(kinds.index(self.kind) + 1) % len(kinds)]

    def on_select_changed(self, event: Select.Changed) -> None:
        self.query_one("#ray-address", Input).disabled = event.value != "ray"

    def describe(self) -> str:
        """Where a Ray run goes, for the log: the cluster address or the local Ray."""
        if self.address:
            return f"ray at {self.address}"
        cpus = f"{self.cfg.local_cpus} CPUs" if self.cfg.local_cpus else "this machine's cores"
        return f"ray (a local Ray on {cpus})"
