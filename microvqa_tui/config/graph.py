"""Settings of the HiCQA-Graph step (mounted into `config.Settings` as `graph`).

Imports pydantic only: the CLI loads settings at start-up and must not pull in torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


class GraphSettings(BaseModel):
    """How the HiCQA-Graph is built, trained and used to filter QAs."""

    keep_fraction: float = Field(
        0.75, gt=0, le=1, description="Fraction of QAs kept (best scores) when no threshold is set."
    )
    threshold: float | None = Field(
        None, ge=0, le=1, description="Keep QAs scoring at least this; overrides keep_fraction."
    )
    knn_k: int = Field(
        5, ge=0, le=64, description="Nearest neighbours per node (0 = no k-NN edges)."
    )
    embedding_dims: int = Field(
        32,
        ge=0,
        description="Principal components of each embedding family used as node features "
        "(0 = every dimension).",
    )
    hidden: int = Field(32, ge=4, description="Hidden width of the GNN.")
    layers: int = Field(2, ge=1, le=4, description="Message-passing layers.")
    attention: bool = Field(
        False,
        description="GATv2 attention (with the signals as edge attributes) on the relations "
        "into caption and image nodes; off = mean aggregation everywhere (faster per epoch).",
    )
    heads: int = Field(2, ge=1, description="Attention heads of the GATv2 layers.")
    wide_init: bool = Field(
        True,
        description="Start the linear path from the QA's own features as the fitted logistic "
        "regression, so the graph part learns only what the neighbourhood adds.",
    )
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout between layers.")
    epochs: int = Field(150, ge=1, description="Most training epochs (full batch).")
    patience: int = Field(
        5, ge=1, description="Early stopping: epochs without a better validation loss."
    )
    lr: float = Field(5e-3, gt=0, description="AdamW learning rate.")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay.")
    seed: int = Field(0, description="Seed of the split, the synthetic negatives and the weights.")
    synthetic_negative_fraction: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Synthetic negatives (corrupted copies) per real QA, e.g. 0.2 = one per five QAs.",
    )
    wrong_figure_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of synthetic negatives attached to another figure "
        "(the rest get a contradicted answer).",
    )
    duplicate_share: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Share of synthetic negatives that are verbatim duplicates of a QA on "
        "another figure (its signals unchanged): teaches the graph that a question fitting "
        "other figures as well is suspect.",
    )
    wrong_pair_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of the wrong-figure negatives that keep their own caption (a "
        "caption attached to the wrong figure: the caption still entails the QA).",
    )
    val_fraction: float = Field(
        0.2, ge=0, lt=1, description="Held-out share of the weak labels used for early stopping."
    )
    human_weight: float = Field(
        5.0, gt=0, description="Loss weight of a human accept/reject label (weak labels weigh ~1)."
    )
    soft_labels: bool = Field(
        True,
        description="Train on the label model's posterior for every QA (weighted by its "
        "confidence) rather than only on the QAs the labelling rules label.",
    )
    signal_dropout: float = Field(
        0.3,
        ge=0,
        lt=1,
        description="Training only: chance of hiding each available signal of a QA, so the model "
        "learns from the rest of the evidence rather than re-learning the labelling functions.",
    )
    label_smoothing: float = Field(
        0.05, ge=0, lt=0.5, description="Smoothing of the weak (not the human) labels."
    )
    knn_memory_mb: int = Field(
        256, ge=8, description="Memory for one block of the exact k-NN similarity matrix."
    )
    knn_tf32: bool = Field(
        True,
        description="On CUDA: find k-NN candidates with TF32 matrix products, then rerank them "
        "in full fp32 (much faster; off = fp32 throughout). No effect on the CPU.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto = the models' device setting (CUDA when available)."
    )
    run_dir: Path | None = Field(
        None, description="Where model weights and metrics go; empty = <store>/graph_runs/<run id>."
    )
    write_edges: bool = Field(True, description="Write the graph's edges to the `edges` table.")
