"""Signals step: consistency signals per QA, each stored with the model that produced it.

    nli_entail, nli_neutral, nli_contradict  caption => statement(question, answer)  (NLI)
    clip_image_caption, clip_image_qa        CLIP cosine of the figure with the caption / QA
    text_caption_qa                          MiniLM cosine of the caption and the QA
    agent_agreement, agent_supported         the LLM's own answer and verdict (see agent.py)
    image_neighbour_caption_agreement        MiniLM closeness of the caption to the captions
                                             of the figures that look most alike by the
                                             model-free pixel descriptor (see neighbours.py)

`clip_image_caption` and `image_neighbour_caption_agreement` are figure–caption signals:
they are written per QA (so every QA row carries them) and once per caption
(item_id = caption_id) for pair-level use. The latter needs no image model (only MiniLM)
and is stored with the model `pixel-stats-v1+<MiniLM id>`; it is not a CLIP signal.

A signal whose model is missing is written with available=False, value None and a detail
saying which model is missing and how to get it — never faked. Resumable per
(QA, signal, model): a signal row of the current model is not computed again, except a
"model missing" placeholder once the model is there (it is then replaced).

`SignalsStep` is a batch step (`pipeline.batchstep`), so it runs in process or on Ray
actors. pending = the QAs with signals left for the current models (and, when the pixel
family is on, every caption's pixel-neighbour agreement: a k-NN over all figures' pixel
descriptors, computed here on the driver); read = per QA its caption text, the stored
vectors its text/CLIP signals use (or the inputs of those missing), its image for the agent
on images, and its pixel-neighbour value; process = NLI, text and CLIP cosines, the agent
(`families.py`, pure); write = new vectors to `emb_*`, then signal rows (`storeio.py`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from microvqa_tui.common.prompts import load_template
from microvqa_tui.config.signals import SignalSettings
from microvqa_tui.engines.base import Engine
from microvqa_tui.pipeline.batchstep import BatchStep, Pending, run_batch_step
from microvqa_tui.pipeline.signals import storeio
from microvqa_tui.pipeline.signals.families import PIXEL, QAItem, compute
from microvqa_tui.pipeline.signals.loading import load_models
from microvqa_tui.pipeline.step import batched, to_jsonable
from microvqa_tui.progress import CancelToken, ProgressReporter
from microvqa_tui.vocabulary import FAMILY_SIGNALS
from store import Store
from store.schema import utcnow

if TYPE_CHECKING:  # annotations only
    from microvqa_tui.config import Settings


@dataclass
class SignalsReport:
    run_id: str = ""
    qas_total: int = 0
    qas_processed: int = 0  # QAs with at least one signal to compute
    written: dict[str, int] = field(default_factory=dict)  # available values written
    unavailable_written: dict[str, int] = field(default_factory=dict)
    coverage: dict[str, float] = field(default_factory=dict)  # share of QAs with a value
    models: dict[str, str] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)  # family -> why
    agent_source: str = ""
    agent_failures: int = 0
    tokens_per_s: float = 0.0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


class SignalsStep(BatchStep[str, QAItem, dict[str, Any]]):
    """A key is a QA id; a result is one batch's rows, pair rows, new vectors and costs."""

    name = "signals"
    reads = ("qas", "captions", "figures", "signals", "emb_*")
    writes = ("signals", "emb_*")
    # `loaded`: the models (each worker loads its own); `driver`: the store, the QAs' needs
    # and the pixel-neighbour values, kept on the driver
    worker_state = ("loaded", "driver")

    def __init__(self, models: Any = None) -> None:
        self.provider = models  # get_<role>(settings) provider; None = the model registry
        self.loaded: dict[str, Any] = {}
        self.driver: dict[str, Any] = {}
        self.cfg: SignalSettings | None = None

    def section(self, settings: Settings) -> SignalSettings:
        """Settings, the model of each family (loaded here) and the agent's prompts (once)."""
        if self.cfg is not None:
            return self.cfg
        cfg = settings.signals
        found = load_models(settings, cfg, self.provider)
        self.ids, self.loaded = found.ids(), found.loaded()
        self.templates = None
        if "agent" in cfg.families and "agent" not in found.missing:
            prompt_dir = settings.stage1.prompt_dir
            self.templates = (
                load_template(cfg.agent_prompt_file, prompt_dir),
                load_template(cfg.verdict_prompt_file, prompt_dir),
            )
        self.seed_base = settings.models.seed
        self.names = [n for f in cfg.families for n in FAMILY_SIGNALS[f]]
        self.cfg = cfg
        return cfg

    def pending(self, store: Any, settings: Settings) -> Pending[str]:
        cfg = self.section(settings)
        qa_ids = sorted(store.ids("qas"))
        todo: list[tuple[str, set[str]]] = []
        for chunk in batched(qa_ids, 2000):
            existing = storeio.existing_signals(store, chunk)
            need = storeio.todo_names(chunk, existing, self.ids, self.names)
            todo.extend((q, need[q]) for q in chunk if need[q])
        todo = todo[: cfg.limit] if cfg.limit else todo
        pixel: dict[str, tuple[float | None, str]] = {}
        if "pixel" not in self.ids.missing and any(PIXEL in need for _, need in todo):
            text = self.loaded.get("pixel")
            pixel = storeio.all_neighbour_agreements(
                store, text, self.ids.text_id, cfg.neighbour_k, self.ids.device
            )
        self.driver = {"store": store, "qa_ids": qa_ids, "need": dict(todo), "pixel": pixel}
        versions = dict(self.ids.signal_model)
        return Pending(
            [q for q, _ in todo], versions, {"qas_total": len(qa_ids)}, description="signals"
        )

    def read(self, store: Any, keys: Sequence[str]) -> list[QAItem]:
        assert self.cfg is not None
        need, pixel = self.driver["need"], self.driver["pixel"]
        return storeio.read_items(store, list(keys), need, self.ids, self.cfg.families, pixel)

    def load(self, settings: Settings) -> None:
        from microvqa_tui.errors import PipelineError

        cfg = self.section(settings)
        if self.loaded:
            return
        found = load_models(settings, cfg, self.provider)
        if found.signal_model != self.ids.signal_model:
            raise PipelineError(
                f"signals worker loaded {found.signal_model}, not {self.ids.signal_model}"
            )
        self.loaded = found.loaded()

    def process(self, items: Sequence[QAItem]) -> list[dict[str, Any]]:
        assert self.cfg is not None
        args = (self.ids, self.loaded, self.cfg, self.templates, self.seed_base)
        return [{**compute(list(items), *args), "qas": len(items)}]

    def write(self, store: Any, results: Sequence[dict[str, Any]]) -> dict[str, int]:
        """New vectors first (as `vectors_for` stored them), then the signal rows."""
        stamp = {"created_at": utcnow(), "run_id": self.run_id}
        counts: Counter[str] = Counter()
        for result in results:
            storeio.write_embeddings(store, result["embeddings"])
            rows = [{**r, **stamp} for r in result["rows"] + result["pairs"]]
            storeio.write_signals(store, rows)
            for row in result["rows"]:
                counts[("ok." if row["available"] else "na.") + row["name"]] += 1
            counts.update({f"agent.{k}": v for k, v in result["stats"].items()})
            counts["qas"] += result["qas"]
        return dict(counts)

    def report(
        self, run_id: str, pending: Pending[str], counts: Counter[str], seconds: float
    ) -> SignalsReport:
        assert self.cfg is not None
        tokens, agent_s = counts["agent.tokens"], counts["agent.seconds"]
        names, self.agent_s = self.names, agent_s
        return SignalsReport(
            run_id=run_id,
            qas_total=pending.counts.get("qas_total", 0),
            qas_processed=counts["qas"],
            written={n: counts["ok." + n] for n in names},
            unavailable_written={n: counts["na." + n] for n in names if counts["na." + n]},
            coverage=storeio.coverage(self.driver["store"], self.driver["qa_ids"], names),
            models=dict(self.ids.signal_model),
            unavailable=dict(self.ids.missing),
            agent_source=self._agent_source(),
            agent_failures=counts["agent.agent_failures"],
            tokens_per_s=tokens / agent_s if agent_s else 0.0,
            seconds=seconds,
        )

    def _agent_source(self) -> str:
        if self.templates is None:
            return ""
        return "image" if self.ids.agent_image else "caption"

    def run_counts(self, report: SignalsReport) -> dict[str, Any]:
        names = ("qas_total", "qas_processed", "written", "unavailable_written", "coverage")
        out = {name: getattr(report, name) for name in names}
        return {**out, "unavailable": report.unavailable, "agent_failures": report.agent_failures}

    def run_timings(self, report: SignalsReport) -> dict[str, float]:
        return {"agent_s": round(self.agent_s, 3), "tokens_per_s": round(report.tokens_per_s, 2)}


def run_signals(
    store: Store,
    settings: Settings,
    *,
    progress: ProgressReporter | None = None,
    cancel: CancelToken | None = None,
    models: Any = None,
    engine: Engine | None = None,
) -> SignalsReport:
    """Compute the signals every QA lacks; `models` provides get_<role>(settings) (tests);
    `engine` defaults to the one in `settings.engine`."""
    step = SignalsStep(models)
    return run_batch_step(step, store, settings, engine=engine, progress=progress, cancel=cancel)
