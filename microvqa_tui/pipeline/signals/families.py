"""The signals of a batch of QAs from their shipped inputs: pure (no store), so a Ray actor
can run it. Vectors the store lacks are computed here and returned for the driver to store.

An item (`QAItem`) carries the QA, the signals it still needs, its own caption text, the
stored vectors of its caption / QA / figure in each space its families use (and the inputs
of those that are missing), the image for the agent on images, and the pixel-neighbour value
the driver computed (that signal needs every figure's descriptor: it stays on the driver).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from microvqa_tui.config.signals import SignalSettings
from microvqa_tui.models.client import run_concurrently
from microvqa_tui.pipeline.embed import SPACES, encode_inputs, encode_texts
from microvqa_tui.pipeline.signals.agent import ask_agent, token_f1
from microvqa_tui.pipeline.signals.loading import MISSING, TEXT, Models
from microvqa_tui.pipeline.signals.statement import to_statement
from microvqa_tui.vocabulary import FAMILY_SIGNALS
from store.ids import text_id

# the embedding spaces a family reads, and the QA field naming its item in each
FAMILY_SPACES: dict[str, tuple[str, ...]] = {
    "text": ("text_caption", "text_qa"),
    "clip": ("clip_image", "clip_caption", "clip_qa"),
}
SPACE_KEY = {"figures": "figure_id", "captions": "caption_id", "qas": "qa_id"}
PIXEL = "image_neighbour_caption_agreement"


def space_key(q: dict[str, Any], space: str) -> str:
    """The id of the QA's item in `space` ("" when the QA has none, e.g. no caption)."""
    return q[SPACE_KEY[SPACES[space].table]] or ""


def family_model_id(ids: Models, family: str) -> str:
    """The model string a family's vectors are stored with."""
    return ids.signal_model["text_caption_qa" if family == "text" else "clip_image_qa"]


def signal_id(item_id: str, name: str, model: str) -> str:
    return text_id(item_id, name, model)


@dataclass
class QAItem:
    qa: dict[str, Any]  # qa_id, figure_id, caption_id, question, answer
    need: set[str]  # signal names still to compute
    caption: str | None  # the QA's own caption text
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # space -> stored vector
    inputs: dict[str, Any] = field(default_factory=dict)  # space -> input, where none stored
    image: Any = None  # bytes or path (the agent on images)
    pixel: tuple[float | None, str] | None = None  # (value, detail) from the driver


@dataclass
class Collected:
    """A batch's outputs: signal rows per QA, pair rows per caption, new vectors, costs
    (rows lack `created_at` and `run_id`: the driver stamps them)."""

    ids: Models
    rows: list[dict[str, Any]] = field(default_factory=list)
    pairs: dict[str, dict[str, Any]] = field(default_factory=dict)  # signal_id -> row
    embeddings: list[tuple[str, str, str, str, np.ndarray]] = field(default_factory=list)
    stats: dict[str, Any] = field(
        default_factory=lambda: {"tokens": 0, "seconds": 0.0, "agent_failures": 0}
    )

    def put(
        self, q: dict[str, Any], name: str, value: Any, detail: str = "", *, ok: bool = True
    ) -> None:
        model = self.ids.signal_model[name]
        self.rows.append(
            {
                "signal_id": signal_id(q["qa_id"], name, model),
                "item_id": q["qa_id"],
                "figure_id": q["figure_id"],
                "name": name,
                "value": None if not ok or value is None else float(value),
                "available": bool(ok and value is not None and np.isfinite(value)),
                "model": model,
                "detail": detail[:1000],
            }
        )

    def pair(self, q: dict[str, Any], name: str, value: float, detail: str) -> None:
        """The row of a figure–caption pair signal (item_id = the QA's caption)."""
        model = self.ids.signal_model[name]
        sid = signal_id(q["caption_id"], name, model)
        self.pairs[sid] = {
            "signal_id": sid,
            "item_id": q["caption_id"],
            "figure_id": q["figure_id"],
            "name": name,
            "value": float(value),
            "available": True,
            "model": model,
            "detail": detail[:1000],
        }

    def as_result(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "pairs": list(self.pairs.values()),
            "embeddings": self.embeddings,
            "stats": self.stats,
        }


def compute(
    items: list[QAItem],
    ids: Models,
    loaded: dict[str, Any],
    cfg: SignalSettings,
    templates: Any,
    seed_base: int,
) -> dict[str, Any]:
    """Every needed signal of `items`, family by family (the order of the single-process run)."""
    out = Collected(ids)
    for family in cfg.families:
        names = FAMILY_SIGNALS[family]
        wanted = [it for it in items if it.need & set(names)]
        if not wanted:
            continue
        if family in ids.missing:
            for it in wanted:
                for name in names:
                    if name in it.need:
                        out.put(it.qa, name, None, MISSING + ids.missing[family], ok=False)
            continue
        if family in FAMILY_SPACES:
            vectors = _vectors(wanted, family, loaded[family], out)
            (_text if family == "text" else _clip)(wanted, vectors, out)
        elif family == "nli":
            _nli(loaded[family], wanted, out)
        elif family == "agent":
            _agent(loaded[family], loaded.get(TEXT), cfg, templates, wanted, out, seed_base)
        elif family == "pixel":
            _pixel(wanted, out)
    return out.as_result()


def _vectors(
    items: list[QAItem], family: str, model: Any, out: Collected
) -> dict[str, dict[str, np.ndarray]]:
    """space -> {item id: vector}: the stored ones, and the missing ones encoded here (in
    the order the QAs name them; an input that cannot be encoded gets no vector)."""
    have: dict[str, dict[str, np.ndarray]] = {}
    for space in FAMILY_SPACES[family]:
        have[space] = {}
        missing: dict[str, tuple[str, Any]] = {}
        for it in items:
            key = space_key(it.qa, space)
            if not key:
                continue
            if space in it.vectors:
                have[space][key] = it.vectors[space]
            elif space in it.inputs and key not in missing:
                missing[key] = (it.qa["figure_id"], it.inputs[space])
        if not missing:
            continue
        encoded = encode_inputs(model, SPACES[space], [x for _, x in missing.values()])
        model_id = family_model_id(out.ids, family)
        for (key, (figure_id, _)), vector in zip(missing.items(), encoded, strict=True):
            if np.isfinite(vector).all():
                have[space][key] = vector
                out.embeddings.append((space, key, figure_id, model_id, vector))
    return have


def _paired(a: dict[str, np.ndarray], b: dict[str, np.ndarray], ka: str, kb: str) -> float | None:
    va, vb = a.get(ka), b.get(kb)
    if va is None or vb is None:
        return None
    return float(np.dot(va, vb))


def _nli(model: Any, items: list[QAItem], out: Collected) -> None:
    with_caption = [it for it in items if it.caption]
    for it in items:
        if not it.caption:
            for name in FAMILY_SIGNALS["nli"]:
                out.put(it.qa, name, None, "the QA has no caption to test against", ok=False)
    if not with_caption:
        return
    statements = [to_statement(it.qa["question"], it.qa["answer"]) for it in with_caption]
    scores = model.score([it.caption for it in with_caption], statements)
    probs = np.asarray(getattr(scores, "probs", scores), dtype=np.float32).reshape(-1, 3)
    for it, statement, row in zip(with_caption, statements, probs, strict=True):
        detail = f"hypothesis: {statement}"
        out.put(it.qa, "nli_entail", row[0], detail)
        out.put(it.qa, "nli_neutral", row[1], detail)
        out.put(it.qa, "nli_contradict", row[2], detail)


def _text(items: list[QAItem], vec: dict[str, dict[str, np.ndarray]], out: Collected) -> None:
    for it in items:
        q = it.qa
        if not q["caption_id"]:
            out.put(q, "text_caption_qa", None, "the QA has no caption", ok=False)
            continue
        value = _paired(vec["text_caption"], vec["text_qa"], q["caption_id"], q["qa_id"])
        detail = (
            "cosine of MiniLM(caption) and MiniLM(question answer)"
            if value is not None
            else "caption or QA could not be embedded"
        )
        out.put(q, "text_caption_qa", value, detail, ok=value is not None)


def _clip(items: list[QAItem], vec: dict[str, dict[str, np.ndarray]], out: Collected) -> None:
    img = vec["clip_image"]
    for it in items:
        q = it.qa
        value = _paired(img, vec["clip_qa"], q["figure_id"], q["qa_id"])
        why = (
            "the figure's image cannot be decoded"
            if q["figure_id"] not in img
            else "the QA could not be embedded"
        )
        detail = "cosine of CLIP image and CLIP text (question answer)"
        out.put(
            q, "clip_image_qa", value, detail if value is not None else why, ok=value is not None
        )
        if not q["caption_id"]:
            out.put(q, "clip_image_caption", None, "the QA has no caption", ok=False)
            continue
        value = _paired(img, vec["clip_caption"], q["figure_id"], q["caption_id"])
        detail = "cosine of CLIP image and CLIP text (caption)"
        out.put(
            q,
            "clip_image_caption",
            value,
            detail if value is not None else why,
            ok=value is not None,
        )
        if value is not None:
            out.pair(q, "clip_image_caption", value, "figure–caption pair")


def _pixel(items: list[QAItem], out: Collected) -> None:
    """The driver's values (see `storeio.all_neighbour_agreements`), per QA and per caption."""
    for it in items:
        q = it.qa
        if not q["caption_id"]:
            out.put(q, PIXEL, None, "the QA has no caption", ok=False)
            continue
        value, detail = it.pixel or (None, "the caption is not in the store")
        out.put(q, PIXEL, value, detail, ok=value is not None)
        if value is not None:
            out.pair(q, PIXEL, value, "figure–caption pair; " + detail)


def _agent_inputs(items: list[QAItem], ids: Models, out: Collected) -> list[QAItem]:
    """The QAs the agent can be asked about; the others get their reason."""
    asked = []
    for it in items:
        if not ids.agent_image and not it.caption:
            out.put(
                it.qa, "agent_agreement", None, "the QA has no caption to answer from", ok=False
            )
            out.put(
                it.qa, "agent_supported", None, "the QA has no caption to judge against", ok=False
            )
            continue
        if ids.agent_image and it.image is None:
            for name in ("agent_agreement", "agent_supported"):
                out.put(it.qa, name, None, "the figure has no image bytes or path", ok=False)
            continue
        asked.append(it)
    return asked


def _agent(
    llm: Any,
    text: Any,
    cfg: SignalSettings,
    templates: Any,
    items: list[QAItem],
    out: Collected,
    seed_base: int,
) -> None:
    answer_t, verdict_t = templates
    asked = _agent_inputs(items, out.ids, out)

    def ask(it: QAItem) -> Any:
        q = it.qa
        return ask_agent(
            llm,
            answer_t,
            verdict_t,
            question=q["question"],
            answer=q["answer"],
            caption=it.caption or "",
            image=it.image if out.ids.agent_image else None,
            max_tokens=cfg.agent_max_tokens,
            max_answer_chars=cfg.agent_max_answer_chars,
            seed=(seed_base + zlib.crc32(q["qa_id"].encode())) % (2**31 - 1),
        )

    # the QAs are asked concurrently (a server's in-flight limit); results are used in order
    done = dict(run_concurrently(ask, asked, llm.in_flight))
    answers = [
        (it.qa, answer)
        for index, it in enumerate(asked)
        if (answer := _agent_result(it.qa, done[index], out)) is not None
    ]
    if answers:
        _agreement(text, cfg, answers, out)


def _agent_result(q: dict[str, Any], result: Any, out: Collected) -> str | None:
    """Store the verdict (or why it failed); the agent's answer, or None when it failed."""
    out.stats["tokens"] += result.tokens
    out.stats["seconds"] += result.seconds
    if result.answer is None:
        out.stats["agent_failures"] += 1
        detail = f"the agent's answer failed: {result.answer_error}"
        out.put(q, "agent_agreement", None, detail, ok=False)
    if result.supported is None:
        out.stats["agent_failures"] += 1
        detail = f"the agent's verdict failed: {result.verdict_error}"
        out.put(q, "agent_supported", None, detail, ok=False)
    else:
        out.put(q, "agent_supported", result.supported, "yes" if result.supported else "no")
    return result.answer


def _agreement(
    text: Any, cfg: SignalSettings, answers: list[tuple[dict[str, Any], str]], out: Collected
) -> None:
    """agent_agreement: MiniLM cosine (or token F1) of the agent's answer and the QA's."""
    use_minilm = text is not None and cfg.agreement != "token_f1"
    if use_minilm:
        a = encode_texts(text, [ans for _, ans in answers])
        b = encode_texts(text, [q["answer"] for q, _ in answers])
        values = np.einsum("nd,nd->n", a, b)
    else:
        values = np.array([token_f1(ans, q["answer"]) for q, ans in answers], dtype=np.float32)
    measure = "MiniLM cosine" if use_minilm else "token F1"
    for (q, ans), value in zip(answers, values, strict=True):
        out.put(q, "agent_agreement", float(value), f"{measure}; agent answer: {ans}")
