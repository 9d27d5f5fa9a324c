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
"""

from __future__ import annotations

import time
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from microvqa_tui.common.captions import caption_texts
from microvqa_tui.common.prompts import load_template
from microvqa_tui.common.runs import record_run
from microvqa_tui.config.signals import SignalSettings, signal_settings
from microvqa_tui.config.stage1 import stage1_settings
from microvqa_tui.models.client import run_concurrently
from microvqa_tui.pipeline.embed import SPACES, vectors_for
from microvqa_tui.pipeline.signals.agent import ask_agent, token_f1
from microvqa_tui.pipeline.signals.statement import to_statement
from microvqa_tui.pipeline.step import (
    batched,
    configured_model,
    load_model,
    model_name,
    to_jsonable,
)
from microvqa_tui.progress import CancelToken, NullProgress, ProgressReporter
from microvqa_tui.vocabulary import FAMILY_SIGNALS
from store import Store
from store.ids import text_id
from store.queries import in_list
from store.schema import utcnow

MISSING = "model missing: "  # detail prefix of placeholders written for a missing model


def signal_id(item_id: str, name: str, model: str) -> str:
    return text_id(item_id, name, model)


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


@dataclass
class _Models:
    """What each family runs on: the loaded model (or None) and the `model` string stored."""

    objects: dict[str, Any] = field(default_factory=dict)  # family -> model (None = missing)
    missing: dict[str, str] = field(default_factory=dict)  # family -> message
    signal_model: dict[str, str] = field(default_factory=dict)  # signal name -> model string
    text: Any = None  # MiniLM (text family, agent agreement)
    text_id: str = ""
    agent_image: bool = False
    device: str = "auto"  # where the k-NN search of the pixel family runs
    pair_cache: dict[str, tuple[float | None, str]] | None = None  # caption -> (value, detail)


def _load_models(settings: Any, cfg: SignalSettings, provider: Any) -> _Models:
    m = _Models()
    cache: dict[str, tuple[Any, str]] = {}
    m.device = str(getattr(getattr(settings, "models", None), "device", "") or "auto")

    def get(role: str) -> tuple[Any, str]:
        if role not in cache:
            cache[role] = load_model(role, settings, provider)
        return cache[role]

    def ident(role: str, model: Any) -> str:
        return (
            model_name(model, settings, role)
            if model is not None
            else configured_model(settings, role)
        )

    text, text_msg = get("text") if {"text", "agent", "pixel"} & set(cfg.families) else (None, "")
    m.text, m.text_id = text, ident("text", text)
    for family in cfg.families:
        if family == "agent":
            vlm_configured = bool(getattr(getattr(settings, "models", None), "vlm", ""))
            use_image = cfg.agent_source == "image" or (
                cfg.agent_source == "auto" and vlm_configured
            )
            role = "vlm" if use_image else "llm"
            model, message = get(role)
            m.agent_image = use_image
            llm_id = ident(role, model)
            measure = (
                m.text_id if (text is not None and cfg.agreement != "token_f1") else "token_f1"
            )
            m.signal_model["agent_agreement"] = f"{llm_id}+{measure}"
            m.signal_model["agent_supported"] = llm_id
        elif family == "pixel":  # the built-in descriptor + MiniLM; missing with MiniLM
            from microvqa_tui.models.pixel import MODEL_ID as PIXEL_MODEL

            model = text
            message = f"image_neighbour_caption_agreement needs the text model: {text_msg}"
            m.signal_model["image_neighbour_caption_agreement"] = f"{PIXEL_MODEL}+{m.text_id}"
        else:
            role = family
            model, message = (text, text_msg) if family == "text" else get(role)
            for name in FAMILY_SIGNALS[family]:
                m.signal_model[name] = ident(role, model)
        m.objects[family] = model
        if model is None:
            m.missing[family] = message or f"no {role} model"
    if cfg.agreement == "minilm" and text is None and "agent" in cfg.families:
        m.objects["agent"] = None
        m.missing["agent"] = f"signals.agreement=minilm needs the text model: {text_msg}"
    return m


def load_qas(store: Store) -> list[dict[str, Any]]:
    rows = store.rows("qas", columns=["qa_id", "figure_id", "caption_id", "question", "answer"])
    rows.sort(key=lambda r: r["qa_id"])
    return rows


def _existing(store: Store, qa_ids: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cols = ["signal_id", "item_id", "name", "model", "available", "detail"]
    for chunk in batched(qa_ids, 400):
        rows.extend(store.rows("signals", in_list("item_id", chunk), cols))
    return rows


def _todo(
    qa_ids: list[str], existing: list[dict[str, Any]], models: _Models, names: list[str]
) -> dict[str, set[str]]:
    """qa_id -> signal names still to compute."""
    done: set[tuple[str, str]] = set()
    for row in existing:
        name = row["name"]
        if name not in models.signal_model or row["model"] != models.signal_model[name]:
            continue
        family = next(f for f, ns in FAMILY_SIGNALS.items() if name in ns)
        placeholder = not row["available"] and (row["detail"] or "").startswith(MISSING)
        if placeholder and models.objects.get(family) is not None:
            continue  # the model is there now: compute the real value
        done.add((row["item_id"], name))
    return {q: {n for n in names if (q, n) not in done} for q in qa_ids}


def run_signals(
    store: Store,
    settings: Any,
    *,
    progress: ProgressReporter | None = None,
    cancel: CancelToken | None = None,
    models: Any = None,
) -> SignalsReport:
    """Compute the signals every QA lacks; `models` provides get_<role>(settings) (tests)."""
    progress = progress or NullProgress()
    cancel = cancel or CancelToken()
    cfg = signal_settings(settings)
    report = SignalsReport()
    clock = time.perf_counter()
    loaded = _load_models(settings, cfg, models)
    report.models = dict(loaded.signal_model)
    report.unavailable = dict(loaded.missing)
    names = [n for f in cfg.families for n in FAMILY_SIGNALS[f]]
    templates = None
    if "agent" in cfg.families and loaded.objects.get("agent") is not None:
        prompt_dir = stage1_settings(settings).prompt_dir
        templates = (
            load_template(cfg.agent_prompt_file, prompt_dir),
            load_template(cfg.verdict_prompt_file, prompt_dir),
        )
        report.agent_source = "image" if loaded.agent_image else "caption"
    seed_base = int(getattr(getattr(settings, "models", None), "seed", 0) or 0)
    counts_ok: Counter[str] = Counter()
    counts_na: Counter[str] = Counter()
    agent_tokens, agent_seconds = 0, 0.0

    with record_run(store, "signals", config=cfg.model_dump(mode="json")) as run:
        report.run_id = run.run_id
        run.models = dict(loaded.signal_model)
        qas = load_qas(store)
        report.qas_total = len(qas)
        todo_all: list[tuple[dict[str, Any], set[str]]] = []
        for chunk in batched(qas, 2000):
            ids = [q["qa_id"] for q in chunk]
            todo = _todo(ids, _existing(store, ids), loaded, names)
            todo_all.extend((q, todo[q["qa_id"]]) for q in chunk if todo[q["qa_id"]])
        if cfg.limit:
            todo_all = todo_all[: cfg.limit]
        progress.start("signals", len(todo_all))
        for batch in batched(todo_all, cfg.batch_size):
            cancel.check()
            rows, caption_rows, stats = _compute_batch(
                store, batch, loaded, cfg, templates, seed_base, run.run_id
            )
            agent_tokens += stats["tokens"]
            agent_seconds += stats["seconds"]
            report.agent_failures += stats["agent_failures"]
            _write(store, rows + caption_rows)
            for row in rows:
                (counts_ok if row["available"] else counts_na)[row["name"]] += 1
            report.qas_processed += len(batch)
            progress.advance(len(batch))
        report.written = {n: counts_ok[n] for n in names}
        report.unavailable_written = {n: counts_na[n] for n in names if counts_na[n]}
        report.coverage = _coverage(store, [q["qa_id"] for q in qas], names)
        report.tokens_per_s = agent_tokens / agent_seconds if agent_seconds else 0.0
        report.seconds = time.perf_counter() - clock
        run.counts = {
            "qas_total": report.qas_total,
            "qas_processed": report.qas_processed,
            "written": report.written,
            "unavailable_written": report.unavailable_written,
            "coverage": report.coverage,
            "unavailable": report.unavailable,
            "agent_failures": report.agent_failures,
        }
        run.timings = {
            "agent_s": round(agent_seconds, 3),
            "tokens_per_s": round(report.tokens_per_s, 2),
        }
    return report


def _write(store: Store, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    store.upsert("signals", rows)
    # a value replaces the "model missing" placeholders of other model names for the same signal
    fresh = [r for r in rows if r["available"]]
    if fresh:
        keep = [r["signal_id"] for r in fresh]
        items = sorted({r["item_id"] for r in fresh})
        names = sorted({r["name"] for r in fresh})
        where = (
            f"available = false AND {in_list('item_id', items)} AND {in_list('name', names)} "
            f"AND NOT {in_list('signal_id', keep)}"
        )
        store.delete("signals", where)


def _coverage(store: Store, qa_ids: list[str], names: list[str]) -> dict[str, float]:
    if not qa_ids:
        return {n: 0.0 for n in names}
    wanted = set(qa_ids)
    have: dict[str, set[str]] = defaultdict(set)
    total = store.count("signals", "available = true")
    if total:
        for row in store.page(
            "signals", where="available = true", columns=["item_id", "name"], limit=total
        ):
            if row["item_id"] in wanted:
                have[row["name"]].add(row["item_id"])
    return {n: len(have[n]) / len(wanted) for n in names}


def _compute_batch(
    store: Store,
    batch: list[tuple[dict[str, Any], set[str]]],
    m: _Models,
    cfg: SignalSettings,
    templates: Any,
    seed_base: int,
    run_id: str,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    now = utcnow()
    qas = [q for q, _ in batch]
    need = {q["qa_id"]: names for q, names in batch}
    captions = caption_texts(store, qas, key="qa_id", fallback=False)
    rows: list[dict[str, Any]] = []
    caption_rows: list[dict[str, Any]] = []
    stats = {"tokens": 0, "seconds": 0.0, "agent_failures": 0}

    def put(
        q: dict[str, Any], name: str, value: float | None, detail: str = "", *, ok: bool = True
    ):
        model = m.signal_model[name]
        rows.append(
            {
                "signal_id": signal_id(q["qa_id"], name, model),
                "item_id": q["qa_id"],
                "figure_id": q["figure_id"],
                "name": name,
                "value": None if not ok or value is None else float(value),
                "available": bool(ok and value is not None and np.isfinite(value)),
                "model": model,
                "detail": detail[:1000],
                "created_at": now,
                "run_id": run_id,
            }
        )

    def caption_of(q: dict[str, Any]) -> str | None:
        return captions[q["qa_id"]] or None

    for family in cfg.families:
        names = FAMILY_SIGNALS[family]
        wanted = [q for q in qas if need[q["qa_id"]] & set(names)]
        if not wanted:
            continue
        model = m.objects.get(family)
        if model is None:
            for q in wanted:
                for name in names:
                    if name in need[q["qa_id"]]:
                        put(q, name, None, MISSING + m.missing.get(family, ""), ok=False)
            continue
        if family == "nli":
            _nli(model, wanted, caption_of, put)
        elif family == "text":
            _text(store, model, m.signal_model["text_caption_qa"], wanted, put)
        elif family == "clip":
            caption_rows += _clip(
                store, model, m.signal_model["clip_image_qa"], wanted, put, now, run_id
            )
        elif family == "agent":
            _agent(store, model, m, cfg, templates, wanted, caption_of, put, seed_base, stats)
        elif family == "pixel":
            caption_rows += _neighbour_agreement(store, model, m, cfg, wanted, put, now, run_id)
    return rows, caption_rows, stats


def _nli(model: Any, qas: list[dict[str, Any]], caption_of: Any, put: Any) -> None:
    with_caption = [q for q in qas if caption_of(q)]
    for q in qas:
        if not caption_of(q):
            for name in FAMILY_SIGNALS["nli"]:
                put(q, name, None, "the QA has no caption to test against", ok=False)
    if not with_caption:
        return
    statements = [to_statement(q["question"], q["answer"]) for q in with_caption]
    scores = model.score([caption_of(q) for q in with_caption], statements)
    probs = np.asarray(getattr(scores, "probs", scores), dtype=np.float32).reshape(-1, 3)
    for q, statement, row in zip(with_caption, statements, probs, strict=True):
        detail = f"hypothesis: {statement}"
        put(q, "nli_entail", row[0], detail)
        put(q, "nli_neutral", row[1], detail)
        put(q, "nli_contradict", row[2], detail)


def _paired(a: dict[str, np.ndarray], b: dict[str, np.ndarray], ka: str, kb: str) -> float | None:
    va, vb = a.get(ka), b.get(kb)
    if va is None or vb is None:
        return None
    return float(np.dot(va, vb))


def _text(store: Store, model: Any, model_id: str, qas: list[dict[str, Any]], put: Any) -> None:
    cap = vectors_for(
        store,
        SPACES["text_caption"],
        model,
        model_id,
        [q["caption_id"] for q in qas if q["caption_id"]],
    )
    qav = vectors_for(store, SPACES["text_qa"], model, model_id, [q["qa_id"] for q in qas])
    for q in qas:
        if not q["caption_id"]:
            put(q, "text_caption_qa", None, "the QA has no caption", ok=False)
            continue
        value = _paired(cap, qav, q["caption_id"], q["qa_id"])
        put(
            q,
            "text_caption_qa",
            value,
            "cosine of MiniLM(caption) and MiniLM(question answer)"
            if value is not None
            else "caption or QA could not be embedded",
            ok=value is not None,
        )


def _clip(
    store: Store,
    model: Any,
    model_id: str,
    qas: list[dict[str, Any]],
    put: Any,
    now: Any,
    run_id: str,
) -> list[dict[str, Any]]:
    img = vectors_for(store, SPACES["clip_image"], model, model_id, [q["figure_id"] for q in qas])
    cap = vectors_for(
        store,
        SPACES["clip_caption"],
        model,
        model_id,
        [q["caption_id"] for q in qas if q["caption_id"]],
    )
    qav = vectors_for(store, SPACES["clip_qa"], model, model_id, [q["qa_id"] for q in qas])
    pair_rows: dict[str, dict[str, Any]] = {}
    for q in qas:
        value = _paired(img, qav, q["figure_id"], q["qa_id"])
        why = (
            "the figure's image cannot be decoded"
            if q["figure_id"] not in img
            else "the QA could not be embedded"
        )
        put(
            q,
            "clip_image_qa",
            value,
            "cosine of CLIP image and CLIP text (question answer)" if value is not None else why,
            ok=value is not None,
        )
        if not q["caption_id"]:
            put(q, "clip_image_caption", None, "the QA has no caption", ok=False)
            continue
        value = _paired(img, cap, q["figure_id"], q["caption_id"])
        put(
            q,
            "clip_image_caption",
            value,
            "cosine of CLIP image and CLIP text (caption)" if value is not None else why,
            ok=value is not None,
        )
        if value is not None:
            pair_rows[q["caption_id"]] = _pair_row(
                q, "clip_image_caption", value, model_id, "figure–caption pair", now, run_id
            )
    return list(pair_rows.values())


def _agent_inputs(
    store: Store, m: _Models, qas: list[dict[str, Any]], caption_of: Any, put: Any
) -> list[tuple[dict[str, Any], str, Any]]:
    """(QA, caption, image) the agent can be asked about; the others get their reason."""
    images: dict[str, Any] = {}
    if m.agent_image:
        for r in store.get_many(
            "figures",
            sorted({q["figure_id"] for q in qas}),
            ["figure_id", "image_bytes", "image_path"],
        ):
            images[r["figure_id"]] = r["image_bytes"] or r["image_path"] or None
    asked: list[tuple[dict[str, Any], str, Any]] = []
    for q in qas:
        caption = caption_of(q) or ""
        if not m.agent_image and not caption:
            put(q, "agent_agreement", None, "the QA has no caption to answer from", ok=False)
            put(q, "agent_supported", None, "the QA has no caption to judge against", ok=False)
            continue
        image = images.get(q["figure_id"]) if m.agent_image else None
        if m.agent_image and image is None:
            put(q, "agent_agreement", None, "the figure has no image bytes or path", ok=False)
            put(q, "agent_supported", None, "the figure has no image bytes or path", ok=False)
            continue
        asked.append((q, caption, image))
    return asked


def _agent(
    store: Store,
    llm: Any,
    m: _Models,
    cfg: SignalSettings,
    templates: Any,
    qas: list[dict[str, Any]],
    caption_of: Any,
    put: Any,
    seed_base: int,
    stats: dict[str, Any],
) -> None:
    answer_t, verdict_t = templates
    answers: list[tuple[dict[str, Any], str]] = []
    asked = _agent_inputs(store, m, qas, caption_of, put)

    def ask(item: tuple[dict[str, Any], str, Any]) -> Any:
        q, caption, image = item
        return ask_agent(
            llm,
            answer_t,
            verdict_t,
            question=q["question"],
            answer=q["answer"],
            caption=caption,
            image=image,
            max_tokens=cfg.agent_max_tokens,
            max_answer_chars=cfg.agent_max_answer_chars,
            seed=(seed_base + zlib.crc32(q["qa_id"].encode())) % (2**31 - 1),
        )

    # the QAs are asked concurrently (a server's in-flight limit); results are used in order
    done = dict(run_concurrently(ask, asked, llm.in_flight))
    for index, (q, _, _) in enumerate(asked):
        result = done[index]
        stats["tokens"] += result.tokens
        stats["seconds"] += result.seconds
        if result.answer is None:
            stats["agent_failures"] += 1
            put(
                q,
                "agent_agreement",
                None,
                f"the agent's answer failed: {result.answer_error}",
                ok=False,
            )
        else:
            answers.append((q, result.answer))
        if result.supported is None:
            stats["agent_failures"] += 1
            put(
                q,
                "agent_supported",
                None,
                f"the agent's verdict failed: {result.verdict_error}",
                ok=False,
            )
        else:
            put(q, "agent_supported", result.supported, "yes" if result.supported else "no")
    if not answers:
        return
    use_minilm = m.text is not None and cfg.agreement != "token_f1"
    if use_minilm:
        from microvqa_tui.pipeline.embed import encode_texts

        a = encode_texts(m.text, [ans for _, ans in answers])
        b = encode_texts(m.text, [q["answer"] for q, _ in answers])
        values = np.einsum("nd,nd->n", a, b)
    else:
        values = np.array([token_f1(ans, q["answer"]) for q, ans in answers], dtype=np.float32)
    measure = "MiniLM cosine" if use_minilm else "token F1"
    for (q, ans), value in zip(answers, values, strict=True):
        put(q, "agent_agreement", float(value), f"{measure}; agent answer: {ans}")


def _neighbour_agreement(
    store: Store,
    text: Any,
    m: _Models,
    cfg: SignalSettings,
    qas: list[dict[str, Any]],
    put: Any,
    now: Any,
    run_id: str,
) -> list[dict[str, Any]]:
    """image_neighbour_caption_agreement per QA and per caption (see neighbours.py).

    The value depends on every captioned figure, so it is computed for all captions once per
    run (vectors the store lacks are computed and stored on the way) and then looked up.
    """
    name = "image_neighbour_caption_agreement"
    model_id = m.signal_model[name]
    if m.pair_cache is None:
        m.pair_cache = _all_neighbour_agreements(store, text, m.text_id, cfg.neighbour_k, m.device)
    pair_rows: dict[str, dict[str, Any]] = {}
    for q in qas:
        if not q["caption_id"]:
            put(q, name, None, "the QA has no caption", ok=False)
            continue
        value, detail = m.pair_cache.get(q["caption_id"], (None, "the caption is not in the store"))
        put(q, name, value, detail, ok=value is not None)
        if value is not None:
            pair_rows[q["caption_id"]] = _pair_row(
                q, name, value, model_id, "figure–caption pair; " + detail, now, run_id
            )
    return list(pair_rows.values())


def _pair_row(
    q: dict[str, Any], name: str, value: float, model: str, detail: str, now: Any, run_id: str
) -> dict[str, Any]:
    """The signals row of a figure–caption pair signal (item_id = the QA's caption)."""
    return {
        "signal_id": signal_id(q["caption_id"], name, model),
        "item_id": q["caption_id"],
        "figure_id": q["figure_id"],
        "name": name,
        "value": float(value),
        "available": True,
        "model": model,
        "detail": detail[:1000],
        "created_at": now,
        "run_id": run_id,
    }


def _all_neighbour_agreements(
    store: Store, text: Any, text_id: str, k: int, device: str
) -> dict[str, tuple[float | None, str]]:
    """caption_id -> (value or None, detail) for every caption in the store."""
    from microvqa_tui.models.pixel import MODEL_ID as PIXEL_MODEL
    from microvqa_tui.models.pixel import PixelDescriptor
    from microvqa_tui.pipeline.signals.neighbours import neighbour_caption_agreement

    rows = store.rows("captions", columns=["caption_id", "figure_id"])
    if not rows:
        return {}
    rows.sort(key=lambda r: r["caption_id"])
    caption_ids = [r["caption_id"] for r in rows]
    figure_ids = sorted({r["figure_id"] for r in rows})
    fig_pos = {f: i for i, f in enumerate(figure_ids)}
    cap_vecs: dict[str, np.ndarray] = {}
    for chunk in batched(caption_ids, 2048):
        cap_vecs.update(vectors_for(store, SPACES["text_caption"], text, text_id, chunk))
    fig_vecs: dict[str, np.ndarray] = {}
    descriptor = PixelDescriptor()
    for chunk in batched(figure_ids, 256):  # image bytes are read a chunk at a time
        fig_vecs.update(vectors_for(store, SPACES["pixel_image"], descriptor, PIXEL_MODEL, chunk))
    dim_c = len(next(iter(cap_vecs.values()))) if cap_vecs else 1
    dim_f = len(next(iter(fig_vecs.values()))) if fig_vecs else 1
    c = np.zeros((len(caption_ids), dim_c), np.float32)
    c_ok = np.zeros(len(caption_ids), bool)
    for i, cid in enumerate(caption_ids):
        if cid in cap_vecs:
            c[i], c_ok[i] = cap_vecs[cid], True
    f = np.zeros((len(figure_ids), dim_f), np.float32)
    f_ok = np.zeros(len(figure_ids), bool)
    for i, fid in enumerate(figure_ids):
        if fid in fig_vecs:
            f[i], f_ok[i] = fig_vecs[fid], True
    result = neighbour_caption_agreement(
        c,
        c_ok,
        np.array([fig_pos[r["figure_id"]] for r in rows], np.int64),
        f,
        f_ok,
        k,
        device=device,
    )
    out: dict[str, tuple[float | None, str]] = {}
    n_pool = int(f_ok.sum())
    for i, cid in enumerate(caption_ids):
        if result.why[i]:
            out[cid] = (None, result.why[i])
            continue
        nbrs = [figure_ids[j] for j in result.neighbours[i] if j >= 0]
        detail = (
            f"MiniLM cosine with the captions of the {len(nbrs)} figures nearest by pixel "
            f"statistics (of {n_pool}) {result.neighbour_mean[i]:.3f} minus mean cosine with "
            f"all other captions {result.baseline[i]:.3f}; neighbours: " + ", ".join(nbrs)
        )
        out[cid] = (float(result.value[i]), detail)
    return out
