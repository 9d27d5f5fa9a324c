"""CLIP (tiny open_clip model), NLI (tiny BERT classifier) and text (real MiniLM) encoders."""

from __future__ import annotations

import numpy as np
import pytest

from microvqa_tui.errors import ModelError, ModelMissingError

try:
    from tests.model_helpers import (
        NLI_ID2LABEL,
        build_tiny_nli,
        image_bytes,
        minilm,
        model_root,
        tiny_clip,
        tiny_nli_dir,
    )
except ImportError:
    from model_helpers import (  # type: ignore[no-redef]  # noqa: F401
        NLI_ID2LABEL,
        build_tiny_nli,
        image_bytes,
        minilm,
        model_root,
        tiny_clip,
        tiny_nli_dir,
    )


# ---------------------------------------------------------------------------- CLIP
@pytest.fixture(scope="module")
def clip(tiny_clip):
    from microvqa_tui.models.clip import load_clip

    return load_clip(tiny_clip.folder, device="cpu", num_workers=0)


@pytest.fixture(scope="module")
def images():
    return [image_bytes(i) for i in range(9)]


def test_clip_image_embeddings_are_unit_rows(clip, images):
    emb = clip.encode_images(images)
    assert emb.shape == (9, 16) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(emb[0], emb[1])  # different images, different vectors


def test_clip_batch_equals_singles(clip, images):
    batched = clip.encode_images(images, batch_size=4)
    singles = np.concatenate([clip.encode_images([img]) for img in images])
    np.testing.assert_allclose(batched, singles, atol=1e-5)


def test_clip_worker_processes_give_the_same_vectors(clip, images):
    inline = clip.encode_images(images, batch_size=4, num_workers=0)
    workers = clip.encode_images(images, batch_size=4, num_workers=2)
    np.testing.assert_allclose(inline, workers, atol=1e-6)


def test_clip_accepts_paths_and_jpeg(clip, tmp_path):
    png, jpeg = image_bytes(3), image_bytes(4, size=(400, 300), fmt="JPEG")
    (tmp_path / "a.png").write_bytes(png)
    (tmp_path / "b.jpg").write_bytes(jpeg)
    from_paths = clip.encode_images([tmp_path / "a.png", str(tmp_path / "b.jpg")])
    from_bytes = clip.encode_images([png, jpeg])
    np.testing.assert_allclose(from_paths, from_bytes, atol=1e-6)


def test_clip_bad_image_is_reported_by_index(clip, images):
    broken = [images[0], b"not an image", images[1]]
    with pytest.raises(ModelError, match="index 1"):
        clip.encode_images(broken)
    emb = clip.encode_images(broken, on_error="nan")
    assert np.isnan(emb[1]).all() and np.isfinite(emb[[0, 2]]).all()


def test_clip_text_embeddings_and_similarities(clip, images):
    texts = ["a confocal micrograph", "an electron micrograph", "a bar chart"]
    txt = clip.encode_texts(texts)
    assert txt.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(txt, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(
        clip.encode_texts(texts, batch_size=1), clip.encode_texts(texts), atol=1e-5
    )
    img = clip.encode_images(images[:2])
    sim = clip.image_text_similarity(img, txt)
    assert sim.shape == (2, 3) and np.all(np.abs(sim) <= 1.0 + 1e-5)
    paired = clip.paired_image_text(images[:3], texts)
    np.testing.assert_allclose(
        paired, np.diag(clip.image_text_similarity(clip.encode_images(images[:3]), txt)), atol=1e-5
    )
    tt = clip.paired_text_text(texts, texts)
    np.testing.assert_allclose(tt, 1.0, atol=1e-5)
    assert clip.encode_images([]).shape == (0, 16)


def test_clip_arch_at_file_loads_the_same_model(tiny_clip, clip, images):
    from microvqa_tui.models.clip import load_clip

    other = load_clip(tiny_clip.arch_spec, num_workers=0)
    np.testing.assert_allclose(
        other.encode_images(images[:3]), clip.encode_images(images[:3]), atol=1e-6
    )


def test_clip_never_falls_back_to_random_weights(tiny_clip, tmp_path):
    from microvqa_tui.models.clip import load_clip

    with pytest.raises(ModelMissingError, match="no CLIP weights"):
        load_clip(tiny_clip.config_only)
    with pytest.raises(ModelMissingError, match="not found"):
        load_clip(tmp_path / "nowhere")
    lone = tmp_path / "lone.pt"
    lone.write_bytes(b"")
    with pytest.raises(ModelError, match="ARCH@path"):
        load_clip(lone)


# ---------------------------------------------------------------------------- NLI
@pytest.fixture(scope="module")
def nli(tiny_nli_dir):
    from microvqa_tui.models.nli import load_nli

    return load_nli(tiny_nli_dir, device="cpu", batch_size=4)


PREMISES = [
    "the cells were stained with dapi and imaged by confocal microscopy",
    "mitochondria are fragmented after treatment",
    "an electron micrograph of a synapse with vesicles",
    "the tissue section shows fibrosis in the liver",
    "scale bar is ten micrometres",
]
HYPOTHESES = [
    "nuclei appear blue",
    "the image shows no nuclei",
    "fluorescence intensity increased over time",
    "the cytoskeleton appears green",
    "the cells were stained",
]


def test_nli_label_order_comes_from_the_config(nli):
    import torch

    assert nli.label_index == {"contradiction": 0, "entailment": 1, "neutral": 2}
    scores = nli.score(PREMISES, HYPOTHESES)
    batch = nli.tokenizer(PREMISES, HYPOTHESES, padding=True, return_tensors="pt")
    with torch.no_grad():
        probs = torch.softmax(nli.model(**batch).logits, -1).numpy()
    np.testing.assert_allclose(scores.entailment, probs[:, 1], atol=1e-5)
    np.testing.assert_allclose(scores.neutral, probs[:, 2], atol=1e-5)
    np.testing.assert_allclose(scores.contradiction, probs[:, 0], atol=1e-5)
    np.testing.assert_allclose(scores.probs.sum(axis=1), 1.0, atol=1e-5)
    assert len(scores) == 5 and set(scores.label()) <= {"entailment", "neutral", "contradiction"}
    assert set(scores.to_dicts()[0]) == {"entailment", "neutral", "contradiction"}


def test_nli_entailment_head_maps_to_entailment(tiny_nli_dir):
    """A head that always says label 1 (ENTAILMENT here) must read as entailment."""
    import torch

    from microvqa_tui.models.nli import load_nli

    model = load_nli(tiny_nli_dir)
    with torch.no_grad():
        model.model.classifier.weight.zero_()
        model.model.classifier.bias.copy_(torch.tensor([0.0, 12.0, 0.0]))
    scores = model.score(PREMISES, HYPOTHESES)
    assert np.all(scores.entailment > 0.99)


def test_nli_batch_equals_singles(nli):
    batched = nli.score(PREMISES, HYPOTHESES, batch_size=3).probs
    singles = np.concatenate(
        [nli.score([p], [h]).probs for p, h in zip(PREMISES, HYPOTHESES, strict=True)]
    )
    np.testing.assert_allclose(batched, singles, atol=1e-5)
    assert np.ptp(batched[:, 0]) > 1e-5  # the inputs matter (not a constant head)


def test_nli_truncates_the_premise_not_the_hypothesis(nli):
    long_premise = " ".join(PREMISES * 20)
    encoded = nli._encode([long_premise], ["the image shows no nuclei"])
    ids = encoded["input_ids"][0].tolist()
    assert len(ids) == nli.max_length == 64
    hyp = nli.tokenizer("the image shows no nuclei", add_special_tokens=False)["input_ids"]
    assert ids[-len(hyp) - 1 : -1] == hyp  # ... [SEP] hypothesis [SEP]
    # a hypothesis longer than the window still scores (both sides truncated)
    scores = nli.score([long_premise, "short"], [long_premise, "short"])
    assert np.isfinite(scores.probs).all()


@pytest.mark.parametrize(
    ("id2label", "ok"),
    [
        ({0: "entailment", 1: "neutral", 2: "contradiction"}, True),
        ({"0": "CONTRADICTION", "1": "NEUTRAL", "2": "ENTAILMENT"}, True),
        ({0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}, False),
        ({0: "entailment", 1: "not_entailment"}, False),
        ({0: "positive", 1: "negative", 2: "neutral"}, False),
    ],
)
def test_nli_label_detection(id2label, ok):
    from microvqa_tui.models.nli import nli_label_indices

    if ok:
        found = nli_label_indices(id2label)
        names = {int(i): name.lower() for i, name in id2label.items()}
        assert {label: names[i] for label, i in found.items()} == {
            "entailment": "entailment",
            "neutral": "neutral",
            "contradiction": "contradiction",
        }
    else:
        with pytest.raises(ModelError, match="not NLI labels"):
            nli_label_indices(id2label)


def test_nli_generic_id2label_uses_label2id():
    from microvqa_tui.models.nli import nli_label_indices

    found = nli_label_indices(
        {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"},
        {"neutral": 0, "entailment": 2, "contradiction": 1},
    )
    assert found == {"neutral": 0, "entailment": 2, "contradiction": 1}


def test_nli_refuses_a_non_nli_checkpoint(model_root):
    from microvqa_tui.models.nli import load_nli

    folder = build_tiny_nli(model_root, seed=3, id2label={0: "LABEL_0", 1: "LABEL_1"})
    with pytest.raises(ModelError, match="not NLI labels"):
        load_nli(folder)
    with pytest.raises(ModelMissingError):
        load_nli(model_root / "absent")


# ---------------------------------------------------------------------------- text (MiniLM)
def test_minilm_embeddings(minilm):
    texts = [
        "A cat sits on the mat.",
        "A kitten is sitting on a rug.",
        "Quarterly revenue increased by ten percent.",
    ]
    emb = minilm.encode(texts)
    assert emb.shape == (3, 384) and emb.dtype == np.float32 and minilm.dim == 384
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    sim = minilm.similarity(emb, emb)
    assert sim[0, 1] > 0.5 > sim[0, 2]
    singles = np.concatenate([minilm.encode([t]) for t in texts])
    np.testing.assert_allclose(emb, singles, atol=1e-5)
    assert minilm.encode([]).shape == (0, 384)


def test_minilm_works_with_the_dedup_encoder_protocol(minilm):
    """The dedup stage calls encode(texts, batch_size=..., normalize_embeddings=True)."""
    out = minilm.encode(["one", "two"], batch_size=1, normalize_embeddings=True)
    assert out.shape == (2, 384)
