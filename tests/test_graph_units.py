"""HiCQA-Graph building blocks on small real arrays: graph shapes, k-NN, labelling functions,
corruption, the filter, and the light import of the settings."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from microvqa_tui.pipeline.graph.build import (
    REL_ABOUT,
    REL_ASKS,
    REL_DEPICTS,
    build_graph,
    knn_relation,
    reverse,
)
from microvqa_tui.pipeline.graph.corrupt import CONTRADICTED, WRONG_FIGURE, corrupt
from microvqa_tui.pipeline.graph.filter import explain, filter_scores, select
from microvqa_tui.pipeline.graph.inputs import Embeddings, GraphInputs, SignalTable
from microvqa_tui.pipeline.graph.knn import knn
from microvqa_tui.pipeline.graph.weak_labels import (
    ABSTAIN,
    NEGATIVE,
    POSITIVE,
    SOURCE_HUMAN,
    SOURCE_SYNTHETIC,
    LFConfig,
    make_targets,
    weak_labels,
)
from microvqa_tui.vocabulary import GRAPH_LOW_SCORE, REVIEWER_REJECTED

try:
    from tests.graph_helpers import one_thread, small_planted
except ImportError:  # pytest's rootdir-relative import without a tests package
    from graph_helpers import one_thread, small_planted  # type: ignore[no-redef]  # noqa: F401


@pytest.fixture(scope="module")
def data():
    return small_planted(30, seed=3)


# ---------------------------------------------------------------------------- build


def test_graph_has_the_right_nodes_edges_and_shapes(data):
    inputs = data.inputs
    neg = corrupt(inputs, 0.2, seed=0)
    k = 4
    g = build_graph(inputs, knn_k=k, negatives=neg)
    d = g.data
    n_q, n_c, n_f, m = inputs.n_qa, inputs.n_captions, inputs.n_figures, len(neg)
    s = len(inputs.signals.names)
    assert (d["image"].num_nodes, d["caption"].num_nodes, d["qa"].num_nodes) == (n_f, n_c, n_q + m)

    with_cap = int((inputs.qa_caption >= 0).sum())
    copy_cap = int((neg.caption >= 0).sum())
    expected = {
        REL_DEPICTS: n_c,
        reverse(REL_DEPICTS): n_c,
        REL_ASKS: with_cap + copy_cap,
        reverse(REL_ASKS): with_cap,
        REL_ABOUT: n_q,
        reverse(REL_ABOUT): n_q + m,
    }
    for rel, count in expected.items():
        assert d[rel].edge_index.shape == (2, count), rel
    # QA relations carry [value, available] per signal + a constant; depicts the pair signals.
    for rel in (REL_ASKS, reverse(REL_ASKS), REL_ABOUT, reverse(REL_ABOUT)):
        assert d[rel].edge_attr.shape == (d[rel].edge_index.shape[1], 2 * s + 1)
    s_cap = len(inputs.caption_signals.names)
    assert d[REL_DEPICTS].edge_attr.shape == (n_c, 2 * s_cap + 1)
    # Every QA with an embedding hears exactly k neighbours; so does each copy.
    qa_valid = inputs.embeddings["qa"]["text"].mask | inputs.embeddings["qa"]["clip"].mask
    knn_qa = d[knn_relation("qa")]
    valid_copies = int(qa_valid[neg.source].sum())
    assert knn_qa.edge_index.shape[1] == k * (int(qa_valid.sum()) + valid_copies)
    assert knn_qa.edge_attr.shape == (knn_qa.edge_index.shape[1], 1)
    for t in ("image", "caption"):
        assert d[knn_relation(t)].edge_index.shape[1] == k * inputs.count(t)
    # Synthetic copies only listen: they never send a message.
    n_real = g.n_real
    for rel in d.edge_types:
        if rel[0] == "qa":
            assert int(d[rel].edge_index[0].max()) < n_real, rel
    # Feature widths: QA features end with the 2S signal features.
    assert d["qa"].x.shape[1] == g.qa_signal_offset + 2 * s
    assert torch.isfinite(d["qa"].x).all()


def test_missing_embeddings_are_zeros_plus_a_flag():
    n = 4
    vectors = np.arange(12, dtype=np.float32).reshape(n, 3) + 1
    mask = np.array([True, False, True, True])
    inputs = GraphInputs(
        qa_ids=[f"q{i}" for i in range(n)],
        figure_ids=["f0", "f1"],
        caption_ids=["c0"],
        qa_figure=[0, 0, 1, 1],
        qa_caption=[0, 0, -1, -1],
        caption_figure=[0],
        signals=SignalTable.empty(n),
        embeddings={"qa": {"text": Embeddings(vectors, mask)}},
    )
    g = build_graph(inputs, knn_k=2)
    x = g.data["qa"].x.numpy()
    assert np.all(x[1, :3] == 0) and x[1, 3] == 1.0  # missing: zeros + flag
    assert np.all(x[mask, 3] == 0.0)
    # Images and captions without embeddings get one constant feature.
    assert g.data["image"].x.shape == (2, 1)
    # The QA without an embedding has no k-NN edges, and is nobody's neighbour.
    ei = g.data[knn_relation("qa")].edge_index.numpy()
    assert 1 not in ei
    # QAs without a caption have no caption edge.
    assert g.data[REL_ASKS].edge_index.shape[1] == 2


# ---------------------------------------------------------------------------- k-NN


def test_knn_matches_brute_force_across_blocks():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(157, 12)).astype(np.float32)
    valid = rng.random(157) > 0.1
    k = 6
    index, sims = knn(x, k, valid=valid, block=(13, 40))

    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    full = unit @ unit.T
    np.fill_diagonal(full, -np.inf)
    full[:, ~valid] = -np.inf
    for i in range(len(x)):
        if not valid[i]:
            assert np.all(index[i] == -1)
            continue
        expected = np.argsort(-full[i], kind="stable")[:k]
        assert set(index[i].tolist()) == set(expected.tolist())
        np.testing.assert_allclose(sims[i], full[i, expected], atol=1e-5)
        assert np.all(np.diff(sims[i]) <= 1e-6)  # sorted, best first
    # Same answer with the default (one-block) sizes, and with the candidate + rerank pass
    # the GPU uses (TF32 there; plain fp32 on the CPU, so exactly the same here).
    index2, _ = knn(x, k, valid=valid)
    assert np.array_equal(np.sort(index, 1), np.sort(index2, 1))
    index3, sims3 = knn(x, k, valid=valid, block=(13, 40), fast=True)
    assert np.array_equal(index3, index)
    np.testing.assert_allclose(sims3, sims, atol=1e-6)


def test_approximate_knn_finds_most_true_neighbours():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(40, 16))
    x = (centres[rng.integers(40, size=4000)] + 0.5 * rng.normal(size=(4000, 16))).astype(
        np.float32
    )
    valid = rng.random(4000) > 0.05
    exact, exact_sims = knn(x, 5, valid=valid)
    approx, approx_sims = knn(x, 5, valid=valid, approximate=True)
    assert np.all(approx[~valid] == -1) and np.all(approx[valid] >= 0)
    assert (
        valid[approx[valid]].all() and not (approx[valid] == np.flatnonzero(valid)[:, None]).any()
    )
    recall = np.mean(
        [len(set(a) & set(e)) / 5 for a, e in zip(approx[valid], exact[valid], strict=True)]
    )
    assert recall > 0.9, recall
    assert np.all(np.diff(approx_sims[valid], axis=1) <= 1e-6)  # best first
    assert np.all(approx_sims[valid][:, 0] <= exact_sims[valid][:, 0] + 1e-5)
    again, _ = knn(x, 5, valid=valid, approximate=True)
    assert np.array_equal(again, approx)  # seeded: the same lists every time


def test_copies_hear_their_source_first(data):
    from microvqa_tui.pipeline.graph.context import copy_knn

    negatives = corrupt(data.inputs, 0.3)
    g = build_graph(data.inputs, knn_k=3, negatives=negatives)
    index, sims = copy_knn(*g.knn["qa"], negatives.source)
    has = g.knn["qa"][0][negatives.source][:, 0] >= 0  # the source has an embedding
    assert 0 < has.sum() < len(has)
    assert np.array_equal(index[has, 0], negatives.source[has]) and np.all(sims[has, 0] == 1.0)
    assert np.array_equal(index[has, 1:], g.knn["qa"][0][negatives.source[has]][:, :2])
    assert np.all(index[~has] == -1)
    edges = g.data[knn_relation("qa")].edge_index.numpy()
    first = int(np.flatnonzero(has)[0])
    assert negatives.source[first] in edges[0][edges[1] == g.n_real + first]


def test_embedding_features_keep_the_leading_components():
    from microvqa_tui.pipeline.graph.build import embedding_features

    rng = np.random.default_rng(0)
    low = rng.normal(size=(300, 3)) @ rng.normal(size=(3, 40))  # rank 3 in 40 dims
    emb = Embeddings((low + 0.01 * rng.normal(size=(300, 40))).astype(np.float32), np.ones(300))
    x, names = embedding_features({"text": emb}, 300, dims=3)
    assert names == ["text"] and x.shape == (300, 4)  # 3 components + the missing flag
    # The components keep the rows' geometry: similar rows stay similar.
    unit = emb.normalized()
    cos = unit @ unit.T
    z = x[:, :3] / np.linalg.norm(x[:, :3], axis=1, keepdims=True)
    assert np.corrcoef(cos.ravel(), (z @ z.T).ravel())[0, 1] > 0.9
    full, _ = embedding_features({"text": emb}, 300)
    assert full.shape == (300, 41)


def test_knn_with_fewer_items_than_k_pads():
    x = np.eye(3, dtype=np.float32)
    index, _sims = knn(x, 5)
    assert index.shape == (3, 5)
    assert np.all(index[:, 2:] == -1) and np.all(index[:, :2] >= 0)


# ---------------------------------------------------------------------------- labelling functions


def _table(rows: list[dict[str, float]]) -> SignalTable:
    names = [
        "nli_entail",
        "nli_contradict",
        "text_caption_qa",
        "clip_image_qa",
        "agent_agreement",
        "agent_supported",
    ]
    values = np.array([[r.get(n, np.nan) for n in names] for r in rows], np.float32)
    return SignalTable(names, values, np.isfinite(values))


def test_labelling_functions_label_and_abstain_as_specified():
    rows = [
        {
            "nli_entail": 0.9,
            "nli_contradict": 0.02,
            "text_caption_qa": 0.7,
            "clip_image_qa": 0.4,
            "agent_agreement": 1,
            "agent_supported": 1,
        },
        {"nli_entail": 0.05, "nli_contradict": 0.9, "text_caption_qa": 0.7},  # contradiction
        {"text_caption_qa": 0.02},  # very low similarity, nothing else
        {"nli_entail": 0.5, "nli_contradict": 0.1, "text_caption_qa": 0.3},  # nothing confident
        {"nli_entail": 0.9, "text_caption_qa": 0.7, "agent_agreement": 0},  # agents disagree
        {"nli_entail": 0.9},  # one vote only
        {},  # no signal at all
        {"nli_entail": 0.9, "text_caption_qa": 0.7},  # the available signals all agree
        {"nli_entail": 0.9, "text_caption_qa": 0.05, "clip_image_qa": 0.4},  # conflict
        {"agent_agreement": 0, "agent_supported": 0},  # two negative votes
        {
            "nli_entail": 0.9,
            "text_caption_qa": 0.2,
            "clip_image_qa": 0.2,
            "agent_agreement": 1,
        },  # no high similarity
    ]
    config = LFConfig(sim_thresholds={"text_caption_qa": (0.1, 0.5), "clip_image_qa": (0.1, 0.3)})
    weak = weak_labels(_table(rows), config)
    expected = [
        POSITIVE,
        NEGATIVE,
        NEGATIVE,
        ABSTAIN,
        ABSTAIN,
        ABSTAIN,
        ABSTAIN,
        POSITIVE,
        ABSTAIN,
        NEGATIVE,
        ABSTAIN,
    ]
    assert weak.label.tolist() == expected
    assert weak.votes["nli_contradict"].tolist()[:2] == [0, -1]
    assert weak.thresholds["text_caption_qa"] == (0.1, 0.5)


def test_similarity_thresholds_default_to_quantiles():
    values = np.linspace(0, 1, 101, dtype=np.float32)
    table = SignalTable(["text_caption_qa"], values[:, None], np.ones((101, 1), bool))
    weak = weak_labels(table)
    low, high = weak.thresholds["text_caption_qa"]
    assert low == pytest.approx(0.05) and high == pytest.approx(0.6)
    # A similarity alone: very low -> negative; high -> positive, as the store has no other
    # signal that could give a second vote.
    assert weak.label[0] == NEGATIVE and weak.label[100] == POSITIVE


def test_label_model_ranks_every_qa_by_its_votes(data):
    weak = weak_labels(data.inputs.signals)
    p = weak.posterior
    assert p.shape == (data.inputs.n_qa,) and np.all((p >= 0) & (p <= 1))
    # Rule positives above abstentions above rule negatives (the label model may overrule
    # a rule where the other votes outweigh it), abstentions spread out.
    pos, neg, abstain = (p[weak.label == c] for c in (POSITIVE, NEGATIVE, ABSTAIN))
    assert np.median(pos) > np.median(abstain) > np.median(neg)
    assert (pos > 0.5).mean() > 0.9 and (neg < 0.5).mean() > 0.8
    assert abstain.std() > 0.05
    # More confident agreement, higher posterior: an extra positive vote never lowers it.
    table = _table(
        [
            {"nli_entail": 0.9, "text_caption_qa": 0.7},
            {"nli_entail": 0.9, "text_caption_qa": 0.7, "agent_agreement": 1},
        ]
        * 20
        + [{"agent_agreement": 0, "agent_supported": 0}] * 10
    )
    weak = weak_labels(table, LFConfig(sim_thresholds={"text_caption_qa": (0.1, 0.5)}))
    assert weak.posterior[1] >= weak.posterior[0] > weak.posterior[-1]


def test_soft_targets_cover_every_qa():
    table = _table(
        [{"nli_entail": 0.9, "text_caption_qa": 0.7}] * 6
        + [{"nli_entail": 0.5}] * 3
        + [{"agent_agreement": 0, "agent_supported": 0}] * 3
    )
    weak = weak_labels(table, LFConfig(sim_thresholds={"text_caption_qa": (0.1, 0.5)}))
    t = make_targets(weak, 2, soft=True, val_fraction=0.0)
    np.testing.assert_allclose(t.y[:12], weak.posterior)
    assert np.all(t.weight[:12] >= 0) and np.all(t.weight[12:] > 0)
    hard = make_targets(weak, 2, soft=False, val_fraction=0.0)
    assert np.all(hard.weight[6:9] == 0)  # the rules abstain there


def test_targets_balance_classes_and_let_humans_override():
    weak = weak_labels(
        _table(
            [{"nli_entail": 0.9, "text_caption_qa": 0.7}] * 6
            + [{"agent_agreement": 0, "agent_supported": 0}] * 2
        )
    )
    human = np.full(8, -1, np.int8)
    human[0] = 0  # a reviewer rejected a weak positive
    t = make_targets(weak, 4, human=human, human_weight=5.0, label_smoothing=0.0, val_fraction=0.0)
    assert t.y[0] == 0 and t.source[0] == SOURCE_HUMAN and t.weight[0] == 5.0
    assert np.all(t.source[8:] == SOURCE_SYNTHETIC) and np.all(t.y[8:] == 0)
    noisy = t.source != SOURCE_HUMAN
    pos_w = t.weight[noisy & (t.y == 1)].sum()
    neg_w = t.weight[noisy & (t.y == 0)].sum()
    assert pos_w == pytest.approx(neg_w)


# ---------------------------------------------------------------------------- corruption


def test_corruption_makes_the_stated_fraction_of_each_kind(data):
    inputs = data.inputs
    neg = corrupt(inputs, 0.2, seed=1, wrong_figure_share=0.5)
    n = int(np.floor(0.2 * inputs.n_qa + 0.5))
    assert len(neg) == n
    wrong = neg.kind == WRONG_FIGURE
    assert abs(int(wrong.sum()) - n / 2) <= 1
    # Wrong figure: another figure, one of that figure's captions.
    assert np.all(neg.figure[wrong] != inputs.qa_figure[neg.source[wrong]])
    has = wrong & (neg.caption >= 0)
    assert np.all(inputs.caption_figure[neg.caption[has]] == neg.figure[has])
    # ... with the text similarity recomputed for the new caption.
    j = neg.signals.index("text_caption_qa")
    qa_emb = inputs.embeddings["qa"]["text"]
    cap_emb = inputs.embeddings["caption"]["text"].normalized()
    for row in np.flatnonzero(has)[:10]:
        src = neg.source[row]
        if qa_emb.mask[src]:
            expected = float(qa_emb.normalized()[src] @ cap_emb[neg.caption[row]])
            assert neg.signals.values[row, j] == pytest.approx(expected, abs=1e-5)
            assert neg.signals.mask[row, j]
    # Contradicted: same figure, contradiction features on.
    contra = neg.kind == CONTRADICTED
    assert np.all(neg.figure[contra] == inputs.qa_figure[neg.source[contra]])
    c = neg.signals.index("nli_contradict")
    assert np.all(neg.signals.values[contra, c] >= 0.5) and np.all(neg.signals.mask[contra, c])


def test_neighbourhood_columns_mean_none_and_best_match_on_another_figure():
    from microvqa_tui.pipeline.graph.context import neighbourhood_features
    from microvqa_tui.pipeline.graph.corrupt import SyntheticNegatives

    inputs = GraphInputs(
        qa_ids=["q0", "q1", "q2", "q3"],
        figure_ids=["f0", "f1"],
        caption_ids=["c0", "c1"],
        qa_figure=[0, 0, 1, 1],
        qa_caption=[0, 0, 1, 1],
        caption_figure=[0, 1],
        signals=SignalTable.empty(4),
    )
    index = np.array([[1, 2], [0, -1], [3, 0], [-1, -1]])
    sims = np.array([[0.9, 0.5], [0.9, 0.0], [0.8, 0.6], [0.0, 0.0]], np.float32)
    out = neighbourhood_features(inputs, SyntheticNegatives.none([]), (index, sims))
    np.testing.assert_allclose(out[:, 0], [0.7, 0.9, 0.7, 0.0])  # mean over real neighbours
    np.testing.assert_array_equal(out[:, 1], [0, 0, 0, 1])  # no neighbours at all
    np.testing.assert_allclose(out[:, 2], [0.5, 0.0, 0.6, 0.0])  # best one on another figure


def test_wrong_pair_copies_keep_their_caption_and_its_entailment(data):
    inputs = data.inputs
    neg = corrupt(inputs, 0.4, seed=2, wrong_figure_share=1.0, wrong_pair_share=0.5)
    src = neg.source
    kept = (neg.kind == WRONG_FIGURE) & (neg.caption == inputs.qa_caption[src])
    moved = (neg.kind == WRONG_FIGURE) & ~kept
    assert abs(int(kept.sum()) - int(moved.sum())) <= 1 and kept.any()
    # Another figure, but the QA's own caption: a caption attached to the wrong figure.
    assert np.all(neg.figure[kept] != inputs.qa_figure[src[kept]])
    # The caption still entails the QA: its NLI triple is the source's, unlike a moved copy's.
    e = inputs.signals.index("nli_entail")
    assert np.array_equal(neg.signals.values[kept, e], inputs.signals.values[src[kept], e])
    assert not np.array_equal(neg.signals.values[moved, e], inputs.signals.values[src[moved], e])
    # The figure-caption similarity is that of the new, wrong pair.
    j = neg.signals.index("clip_image_caption")
    img = inputs.embeddings["image"]["clip"].normalized()
    cap = inputs.embeddings["caption"]["clip"].normalized()
    for row in np.flatnonzero(kept)[:10]:
        expected = float(img[neg.figure[row]] @ cap[neg.caption[row]])
        assert neg.signals.values[row, j] == pytest.approx(expected, abs=1e-5)


def test_corruption_kinds_follow_what_is_possible(data):
    inputs = data.inputs
    assert len(corrupt(inputs, 0.0)) == 0
    # Without NLI or agent signals there is nothing to carry a contradiction.
    keep = [j for j, n in enumerate(inputs.signals.names) if not n.startswith(("nli_", "agent_"))]
    only_sims = GraphInputs(
        **{
            **inputs.__dict__,
            "signals": SignalTable(
                [inputs.signals.names[j] for j in keep],
                inputs.signals.values[:, keep],
                inputs.signals.mask[:, keep],
            ),
        }
    )
    neg = corrupt(only_sims, 0.3)
    assert len(neg) == int(np.floor(0.3 * inputs.n_qa + 0.5)) and np.all(neg.kind == WRONG_FIGURE)
    # With a single figure there is no other figure to attach to.
    one = GraphInputs(
        qa_ids=["a", "b"],
        figure_ids=["f"],
        caption_ids=["c"],
        qa_figure=[0, 0],
        qa_caption=[0, 0],
        caption_figure=[0],
        signals=SignalTable(["nli_contradict"], [[0.1], [0.2]], [[True], [True]]),
    )
    neg = corrupt(one, 1.0)
    assert len(neg) == 2 and np.all(neg.kind == CONTRADICTED)


# ---------------------------------------------------------------------------- filter


def test_select_keeps_the_stated_fraction_even_with_ties():
    scores = np.array([0.9, 0.5, 0.5, 0.5, 0.1, 0.2, 0.8, 0.5])
    keep, cut = select(scores, keep_fraction=0.75)
    assert keep.sum() == 6 and cut == 0.5
    keep, cut = select(scores, threshold=0.5)
    assert keep.sum() == 6 and cut == 0.5
    keep, _ = select(scores, threshold=0.85)
    assert keep.tolist() == [True] + [False] * 7


def test_reasons_name_signals_and_neighbours():
    signals = SignalTable(
        ["nli_contradict", "clip_image_qa", "text_caption_qa"],
        [[0.91, 0.12, 0.5], [0.05, 0.4, 0.6], [0.04, 0.38, 0.61], [0.06, 0.41, 0.59]],
        np.ones((4, 3), bool),
    )
    scores = np.array([0.21, 0.8, 0.7, 0.75])
    knn_index = np.array([[1, 2], [2, 3], [1, 3], [1, 2]])
    effects = np.array([[0.3, 0.1, 0.001]], np.float32)
    result = filter_scores(
        scores,
        signals,
        keep_fraction=0.75,
        effects=effects,
        effect_rows=np.array([0]),
        knn_index=knn_index,
    )
    assert result.keep.tolist() == [False, True, True, True]
    reason = result.reasons[0]
    assert reason.startswith(
        f"{GRAPH_LOW_SCORE}: score 0.21 < 0.70: nli_contradict 0.91 (high), clip_image_qa 0.12 (low)"
    )
    assert "text_caption_qa" not in reason  # too small an effect to name
    assert reason.endswith("0/2 nearest QAs also held out")
    with_figures = filter_scores(
        scores, signals, keep_fraction=0.75, knn_index=knn_index, qa_figure=np.array([0, 1, 1, 0])
    )
    assert with_figures.reasons[0].endswith("0/2 nearest QAs also held out, 2/2 on other figures")
    assert result.reasons[1:] == ["", "", ""]
    # Without what-if effects the signals furthest on their bad side are named.
    plain = explain(scores, result.keep, 0.7, signals)
    assert "nli_contradict 0.91 (high)" in plain[0]
    # A reviewer's reject says so.
    human = np.array([-1, 0, -1, -1])
    result = filter_scores(scores, signals, keep_fraction=0.75, human=human)
    assert not result.keep[1] and result.reasons[1].startswith(f"{REVIEWER_REJECTED}: score 0.80")


# ---------------------------------------------------------------------------- settings


def test_settings_import_pulls_in_no_torch():
    code = (
        "import sys; from microvqa_tui.pipeline.graph import GraphSettings;"
        "s = GraphSettings(); print(s.keep_fraction, 'torch' in sys.modules, 'torch_geometric' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0.75", "False", "False"]


def test_sparse_and_edge_index_paths_agree(data):
    from microvqa_tui.pipeline.graph.model import HiCQAGNN, MeanAdjacency, model_inputs

    g = build_graph(data.inputs, knn_k=3, negatives=corrupt(data.inputs, 0.2))
    torch.manual_seed(0)
    model = HiCQAGNN.for_graph(g, hidden=16).eval()
    torch.nn.init.normal_(model.head[-1].weight)  # the graph part starts at zero otherwise
    sparse = model_inputs(g, sparse=True)
    dense = model_inputs(g, sparse=False)
    assert isinstance(sparse.adj[knn_relation("qa")], MeanAdjacency)
    assert dense.adj[knn_relation("qa")].layout == torch.strided
    with torch.no_grad():
        torch.testing.assert_close(model(sparse), model(dense), atol=1e-5, rtol=1e-5)
    # The sparse path's hand-written backward gives the scatter path's gradients.
    grads = []
    for inputs in (sparse, dense):
        model.zero_grad()
        model(inputs).square().sum().backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------------- planted data


def test_relational_corruptions_are_planted_as_stated():
    from microvqa_tui.pipeline.graph.relational import RELATIONAL_KINDS

    base = small_planted(80, seed=2, corrupt_fraction=0.1)
    assert np.array_equal(
        small_planted(80, seed=2, corrupt_fraction=0.1, relational={}).inputs.signals.values,
        base.inputs.signals.values,
    )
    d = small_planted(
        80, seed=2, corrupt_fraction=0.1, relational=dict.fromkeys(RELATIONAL_KINDS, 0.05)
    )
    inputs, kind = d.inputs, d.kind
    assert set(np.unique(base.kind)) == {-1, 0, 1}
    for name, code in RELATIONAL_KINDS.items():
        assert (kind == code).sum() >= 3, name
    unit = inputs.embedding("qa", "text").normalized()
    has_text = inputs.embedding("qa", "text").mask
    # A wrong caption takes all of its QAs with it.
    for c in np.unique(inputs.qa_caption[kind == RELATIONAL_KINDS["caption_wrong"]]):
        assert np.all(kind[inputs.qa_caption == c] == RELATIONAL_KINDS["caption_wrong"])
    # A near-duplicate's figure looks like another figure.
    image = inputs.embedding("image", "clip").normalized()
    for q in np.flatnonzero(kind == RELATIONAL_KINDS["near_duplicate"]):
        cos = image @ image[inputs.qa_figure[q]]
        cos[inputs.qa_figure[q]] = -1
        assert cos.max() > 0.9
    # A contradicting QA restates a sibling of its caption.
    restated, restatement = d.extra["siblings"]
    assert np.all(kind[restated] == -1)
    assert np.all(kind[restatement] == RELATIONAL_KINDS["sibling_contradiction"])
    assert np.array_equal(inputs.qa_caption[restated], inputs.qa_caption[restatement])
    both = has_text[restated] & has_text[restatement]
    assert np.all((unit[restated] * unit[restatement]).sum(1)[both] > 0.95)
    # Generic questions: a few tight clusters spread over many figures.
    generic = np.flatnonzero((kind == RELATIONAL_KINDS["generic"]) & has_text)
    nearest = (unit[generic] @ unit[generic].T - 2 * np.eye(len(generic))).max(1)
    assert np.all(nearest > 0.9) and len(np.unique(inputs.qa_figure[generic])) >= 3
