"""`ingest_source`: the one entry point the CLI and the TUI call."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from microvqa_tui.common.runs import record_run
from microvqa_tui.config import IngestSettings
from microvqa_tui.errors import Cancelled
from microvqa_tui.ingest.detect import open_reader, resolve_source
from microvqa_tui.ingest.runner import IngestRunner
from microvqa_tui.progress import CancelToken, NullProgress, ProgressReporter
from store import Store

STEP = "ingest"


@dataclass
class IngestReport:
    """What one ingest run did. `quarantined` counts this run's rejections per reason code
    (a re-run reports them again, though it adds no new quarantine rows)."""

    run_id: str
    kind: str
    source: str
    read: int = 0
    figures_new: int = 0
    captions_new: int = 0
    qas_new: int = 0
    mcqs_new: int = 0
    quarantine_new: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    cancelled: bool = False

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["quarantined_total"] = self.quarantined_total
        return data


def ingest_source(
    store: Store,
    path: str | os.PathLike[str],
    settings: IngestSettings,
    *,
    kind: str | None = None,
    progress: ProgressReporter = NullProgress(),
    cancel: CancelToken | None = None,
) -> IngestReport:
    """Ingest figure–caption pairs (and imported QAs and MCQs) from `path` into `store`.

    `kind` forces the source kind (folder, manifest, parquet, webdataset); by default it is
    detected from the path. Bad records are quarantined, never fatal; a source that cannot be
    ingested at all raises IngestError (ValidationError for self-contradicting MCQ files)
    before anything is written. When `cancel` is set, the run stops at the next batch
    boundary and raises Cancelled (its `.report` holds the partial counts); re-running
    resumes, adding exactly the missing rows.
    """
    source = resolve_source(path, kind)
    reader = open_reader(source, settings, progress.log)
    config = {
        "path": str(path),
        "source": str(_label(source)),
        "kind": source.kind,
        "files": len(source.files),
        "ingest": settings.model_dump(mode="json"),
    }
    clock = time.perf_counter()
    with record_run(store, STEP, config=config) as run:
        report = IngestReport(run_id=run.run_id, kind=source.kind, source=str(_label(source)))
        runner = IngestRunner(
            store,
            settings,
            run_id=run.run_id,
            kind=source.kind,
            progress=progress,
            cancel=cancel,
        )
        try:
            total = reader.plan()
            progress.start(f"ingest {source.kind}: {reader.label}", total)
            runner.run(reader)
        except Cancelled as exc:
            report.cancelled = True
            exc.report = _fill(report, runner, clock)  # type: ignore[attr-defined]
            raise
        finally:
            _fill(report, runner, clock)
            run.counts.update(runner.counts.as_dict())
            run.timings["ingest_s"] = report.elapsed_s
    return report


def _label(source) -> Path:
    return source.files[0] if len(source.files) == 1 else source.root


def _fill(report: IngestReport, runner: IngestRunner, clock: float) -> IngestReport:
    counts = runner.counts
    report.read = counts.read
    report.figures_new = counts.figures_new
    report.captions_new = counts.captions_new
    report.qas_new = counts.qas_new
    report.mcqs_new = counts.mcqs_new
    report.quarantine_new = counts.quarantine_new
    report.quarantined = dict(sorted(counts.quarantined.items()))
    report.elapsed_s = round(time.perf_counter() - clock, 3)
    return report
