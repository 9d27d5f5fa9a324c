"""Weak labels when the signal set is degenerate: one QA similarity next to a pair-level
signal that only ever votes negative (what a store with MiniLM and the pixel descriptor has)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from graph_helpers import small_planted

from microvqa_tui.pipeline.graph.inputs import SignalTable
from microvqa_tui.pipeline.graph.weak_labels import (
    NEGATIVE,
    POSITIVE,
    label_model,
    weak_labels,
)

KEPT = ("text_caption_qa", "clip_image_caption")


@pytest.fixture(scope="module")
def degenerate():
    data = small_planted(n_figures=80, seed=1)
    signals = data.inputs.signals
    columns = [signals.index(name) for name in KEPT]
    only = SignalTable(list(KEPT), signals.values[:, columns], signals.mask[:, columns])
    return data, dataclasses.replace(data.inputs, signals=only)


def test_a_negative_only_signal_does_not_rule_out_positive_labels(degenerate):
    _, inputs = degenerate
    weak = weak_labels(inputs.signals)
    assert not (weak.votes["clip_image_caption"] > 0).any()
    assert (weak.label == POSITIVE).sum() > 0
    assert (weak.label == NEGATIVE).sum() > 0
    # The posterior follows the rules' polarity instead of drifting to "all consistent".
    assert weak.posterior[weak.label == NEGATIVE].max() < 0.5
    assert weak.posterior[weak.label == POSITIVE].min() > 0.5
    assert "warning" not in weak.summary()


def test_one_sided_weak_labels_are_reported():
    n = 40
    low = np.r_[np.zeros(2), np.ones(n - 2)]  # only two QAs read very low
    signals = SignalTable(["clip_image_caption"], low, np.ones(n, bool))
    weak = weak_labels(signals)
    assert (weak.label == POSITIVE).sum() == 0
    assert "no QA labelled consistent" in weak.summary()["warning"]


def test_two_lf_label_model_keeps_each_vote_s_polarity():
    # Two LFs, one of them negative-only: EM used to slide every QA towards consistent.
    n = 90
    text = np.r_[np.ones(35), np.zeros(50), -np.ones(5)].astype(np.int8)
    pair = np.r_[np.zeros(84), -np.ones(6)].astype(np.int8)
    init = np.where(text > 0, POSITIVE, np.where((text < 0) | (pair < 0), NEGATIVE, -1))
    everywhere = np.ones(n, bool)
    p = label_model({"text": text, "pair": pair}, {"text": everywhere, "pair": everywhere}, init)
    assert p[init == NEGATIVE].max() < 0.5 < p[init == POSITIVE].min()
