"""Helpers of the HiCQA-Graph tests: small planted data sets, fast settings, a filled store."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from microvqa_tui.config import Settings, load_settings
from microvqa_tui.config.graph import GraphSettings
from microvqa_tui.pipeline.graph.synthetic import PlantedData, planted
from store import Store
from store.ids import text_id
from store.schema import utcnow


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small graphs train fastest on one thread, and it spares the shared cores (torch's
    thread pool slows down many times over when other processes take the cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_planted(n_figures: int = 60, seed: int = 0, **kwargs) -> PlantedData:
    return planted(n_figures=n_figures, seed=seed, text_dim=24, clip_dim=24, **kwargs)


def fast_settings(**overrides) -> GraphSettings:
    """Small and quick, still the real model: 2 layers, hidden 32."""
    values = {"hidden": 32, "epochs": 60, "patience": 15, "knn_k": 4, "device": "cpu"}
    values.update(overrides)
    return GraphSettings(**values)


def fast_run_settings(**overrides) -> Settings:
    """The tool's settings with `fast_settings(**overrides)` as their graph section."""
    return load_settings().model_copy(update={"graph": fast_settings(**overrides)})


def fill_store(
    store: Store,
    data: PlantedData,
    *,
    pair_signals_by_caption: bool = True,
    order: np.ndarray | None = None,
) -> dict:
    """Write the planted data set as captions, QAs, signals and embeddings; return the ids.
    `order`: the order the QA and signal rows are written in (default: the data's).

    `clip_image_caption` goes in as a pair-level signal keyed by caption id (as a CLIP step
    would write it); the other signals are keyed by QA id; unavailable signals are written
    with `available=False`, as the signal steps do.
    """
    inputs = data.inputs
    now = utcnow()
    figure_ids = [text_id("figure", f) for f in inputs.figure_ids]
    caption_rows = []
    for c, fig in enumerate(inputs.caption_figure.tolist()):
        text = f"caption {c} of figure {fig}"
        caption_rows.append(
            {
                "caption_id": text_id(figure_ids[fig], text),
                "figure_id": figure_ids[fig],
                "text": text,
                "created_at": now,
            }
        )
    caption_ids = [r["caption_id"] for r in caption_rows]
    qa_rows = []
    for q in range(inputs.n_qa):
        fig = figure_ids[inputs.qa_figure[q]]
        cap = caption_ids[inputs.qa_caption[q]] if inputs.qa_caption[q] >= 0 else ""
        question, answer = f"question {q}?", f"answer {q}"
        qa_rows.append(
            {
                "qa_id": text_id(fig, question, answer),
                "figure_id": fig,
                "caption_id": cap,
                "question": question,
                "answer": answer,
                "task_type": "expert_visual_understanding",
                "origin": "stage1",
                "created_at": now,
            }
        )
    qa_ids = [r["qa_id"] for r in qa_rows]
    order = np.arange(inputs.n_qa) if order is None else np.asarray(order)
    store.insert_new("captions", caption_rows)
    store.insert_new("qas", [qa_rows[q] for q in order])

    signal_rows = []
    sig = inputs.signals
    for j, name in enumerate(sig.names):
        if name == "clip_image_caption" and pair_signals_by_caption:
            continue
        for q in order.tolist():
            ok = bool(sig.mask[q, j])
            signal_rows.append(
                {
                    "signal_id": text_id(qa_ids[q], name, "m"),
                    "item_id": qa_ids[q],
                    "figure_id": qa_rows[q]["figure_id"],
                    "name": name,
                    "value": float(sig.values[q, j]) if ok else None,
                    "available": ok,
                    "model": f"model-{name}",
                    "created_at": now,
                }
            )
    if pair_signals_by_caption:
        cs = inputs.caption_signals
        j = cs.index("clip_image_caption")
        for c in range(inputs.n_captions):
            signal_rows.append(
                {
                    "signal_id": text_id(caption_ids[c], "clip_image_caption", "m"),
                    "item_id": caption_ids[c],
                    "figure_id": caption_rows[c]["figure_id"],
                    "name": "clip_image_caption",
                    "value": float(cs.values[c, j]),
                    "available": bool(cs.mask[c, j]),
                    "model": "clip",
                    "created_at": now,
                }
            )
    store.insert_new("signals", signal_rows)

    id_lists = {"image": figure_ids, "caption": caption_ids, "qa": qa_ids}
    for node_type, families in inputs.embeddings.items():
        for family, emb in families.items():
            tbl = store.embedding_table(f"{family}_{node_type}", dim=emb.dim)
            rows = [
                {
                    "item_id": id_lists[node_type][i],
                    "figure_id": "",
                    "vector": emb.vectors[i].tolist(),
                    "model": family,
                }
                for i in np.flatnonzero(emb.mask)
            ]
            tbl.add(rows)
    return {"figure_ids": figure_ids, "caption_ids": caption_ids, "qa_ids": qa_ids}
