"""What the Pipeline screen shows: the stages in order with their last run, and the
device/model status. No Textual here.

Nothing in this module imports torch or a model library: the device is guessed from the CUDA
driver's files; the full check (`microvqa doctor`) is a separate, explicit action.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from microvqa_tui.assets import SAMPLE_MANIFEST
from microvqa_tui.pipeline.steps import STEPS

if TYPE_CHECKING:
    from microvqa_tui.config import Settings
    from store import Store

INGEST = "ingest"


@dataclass(frozen=True)
class Stage:
    name: str
    title: str
    description: str
    engines: tuple[str, ...] = ("local",)  # where it can run: the step spec's `engines`


def stages() -> list[Stage]:
    """Ingest first, then the registered pipeline steps in order."""
    result = [
        Stage(
            INGEST,
            "Ingest",
            "read figure–caption pairs (folder, JSONL/CSV, Parquet, WebDataset) into the store",
        )
    ]
    result.extend(Stage(s.name, s.title, s.description, s.engines) for s in STEPS)
    return result


@dataclass
class StageStatus:
    stage: Stage
    status: str = "never run"  # never run | running | done | failed | cancelled
    started_at: datetime | None = None
    finished_at: datetime | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    runs: int = 0

    def counts_text(self, limit: int = 4) -> str:
        items: list[tuple[str, int | float]] = []
        for key, value in self.counts.items():
            if isinstance(value, bool):
                continue
            if isinstance(value, int | float):
                items.append((key, value))
            elif isinstance(value, dict):  # e.g. per embedding space
                items += [
                    (f"{key} {k}", v)
                    for k, v in value.items()
                    if isinstance(v, int | float) and not isinstance(v, bool)
                ]
        return ", ".join(
            f"{k} {v:,}" if isinstance(v, int) else f"{k} {v:,.1f}" for k, v in items[:limit]
        )


def stage_statuses(store: Store) -> list[StageStatus]:
    """The last run of every stage, from the `runs` table (which is small: read it whole)."""
    by_step: dict[str, list[dict[str, Any]]] = {}
    for row in store.rows("runs", order_by=["started_at"]):
        by_step.setdefault(row["step"], []).append(row)
    result = []
    for stage in stages():
        status = StageStatus(stage)
        runs = by_step.get(stage.name, [])
        if runs:
            last = runs[-1]
            status.status = last["status"]
            status.started_at = last["started_at"]
            status.finished_at = last.get("finished_at")
            status.counts = _json(last.get("counts_json"))
            status.config = _json(last.get("config_json"))
            status.message = last.get("message") or ""
            status.runs = len(runs)
        result.append(status)
    return result


def _json(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def last_ingest_path(statuses: list[StageStatus]) -> str | None:
    for status in statuses:
        if status.stage.name == INGEST and status.config.get("path"):
            return str(status.config["path"])
    return None


def default_ingest_path() -> str:
    """The embedded sample, relative to the working directory when that is shorter."""
    try:
        return str(SAMPLE_MANIFEST.relative_to(Path.cwd()))
    except ValueError:
        return str(SAMPLE_MANIFEST)


# ---------------------------------------------------------------------- device and models
@dataclass
class ModelRow:
    role: str
    present: bool
    detail: str  # the path when present, else why it is missing
    name: str = ""  # the configured model, shortened for display
    size: str = ""


def short_model_name(model: str) -> str:
    """'hf-hub:org/Some-Model' → 'Some-Model'; a path → its last part."""
    text = model.strip().rstrip("/")
    return text.rsplit("/", 1)[-1].removeprefix("hf-hub:") or text


@dataclass
class Environment:
    device: str  # "GPU" | "CPU"
    device_detail: str
    models: list[ModelRow] = field(default_factory=list)


def guess_device(settings: Settings) -> tuple[str, str]:
    """GPU or CPU without importing torch: the configured device and the CUDA driver's files."""
    wanted = settings.models.device
    if wanted == "cpu":
        return "CPU", "models.device = cpu"
    gpus = Path("/proc/driver/nvidia/gpus")
    count = len(list(gpus.iterdir())) if gpus.is_dir() else 0
    if count or shutil.which("nvidia-smi"):
        which = f"{count} NVIDIA GPU(s)" if count else "NVIDIA driver found"
        return "GPU", f"{which}; models.device = {wanted}"
    if wanted == "cuda":
        return "CPU", "models.device = cuda but no CUDA driver found"
    return "CPU", "no CUDA driver found: models run on the CPU"


def probe_environment(settings: Settings) -> Environment:
    """Device and model presence, cheap enough for a worker at start-up (no torch import)."""
    device, detail = guess_device(settings)
    env = Environment(device, detail)
    from microvqa_tui.models.registry import model_status

    for row in model_status(settings):
        env.models.append(
            ModelRow(
                str(row.get("role", "?")),
                bool(row.get("present")),
                str(row.get("detail") or row.get("model") or ""),
                name=short_model_name(str(row.get("model") or "")),
                size=str(row.get("size") or ""),
            )
        )
    return env


def doctor_lines(settings: Settings) -> list[str]:
    """The full environment check (`microvqa doctor`); imports torch, so run it in a worker."""
    from microvqa_tui.doctor import run_checks

    return [f"{'ok ' if c.ok else 'BAD'} {c.name}: {c.detail}" for c in run_checks(settings)]
