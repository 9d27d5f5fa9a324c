"""Embed step: MiniLM (real) and a tiny CLIP, resumability, a missing CLIP reported."""

from __future__ import annotations

import json

import numpy as np
import pytest

from microvqa_tui.pipeline.embed import EmbedSettings, embedded_ids, run_embed, stored_vectors
from microvqa_tui.progress import CancelToken
from tests.model_helpers import minilm, model_root, tiny_clip  # noqa: F401  (fixtures)
from tests.stage_helpers import Provider, add_qa, add_sample, step_settings


@pytest.fixture(scope="module")
def clip_model(tiny_clip):  # noqa: F811
    from microvqa_tui.models.clip import load_clip

    return load_clip(tiny_clip.folder, model_id="tiny-clip")


def _store_with_qas(store):
    captions = add_sample(store, 3)
    for c in captions[:2]:
        add_qa(store, c["figure_id"], c["caption_id"], "Which cells are shown?", "Nevus cells")
    return captions


def test_text_spaces_embedded_and_missing_clip_reported(store, settings, minilm):  # noqa: F811
    captions = _store_with_qas(store)
    s = step_settings(settings)
    report = run_embed(store, s, models=Provider(text=minilm))
    out = report.to_dict()
    assert out["spaces"]["text_caption"]["embedded"] == 3
    assert out["spaces"]["text_qa"]["embedded"] == 2
    assert "clip" in out["unavailable"] and "pull clip" in out["unavailable"]["clip"]
    assert "clip_image" not in out["spaces"]
    model = minilm.model_id
    vectors = stored_vectors(store, "text_caption", [c["caption_id"] for c in captions], model)
    assert len(vectors) == 3
    v = next(iter(vectors.values()))
    assert v.shape == (384,) and abs(np.linalg.norm(v) - 1) < 1e-4
    rows = store.embedding_table("text_caption").search().limit(5).to_arrow().to_pylist()
    assert {r["figure_id"] for r in rows} == {c["figure_id"] for c in captions}
    run = store.get("runs", report.run_id)
    assert json.loads(run["counts_json"])["unavailable"]["clip"]
    # resumable: a second run embeds nothing; a new QA is the only new item
    again = run_embed(store, s, models=Provider(text=minilm)).to_dict()
    assert again["spaces"]["text_caption"]["embedded"] == 0
    assert again["spaces"]["text_caption"]["already"] == 3
    add_qa(store, captions[2]["figure_id"], captions[2]["caption_id"], "What stain?", "H&E")
    third = run_embed(store, s, models=Provider(text=minilm)).to_dict()
    assert third["spaces"]["text_qa"]["embedded"] == 1


def test_clip_spaces_with_tiny_clip(store, settings, clip_model):
    captions = _store_with_qas(store)
    s = step_settings(
        settings,
        embed=EmbedSettings(spaces=["clip_image", "clip_caption", "clip_qa"], batch_size=2),
    )
    report = run_embed(store, s, models=Provider(clip=clip_model)).to_dict()
    assert report["unavailable"] == {}
    assert {k: v["embedded"] for k, v in report["spaces"].items()} == {
        "clip_image": 3,
        "clip_caption": 3,
        "clip_qa": 2,
    }
    figures = [c["figure_id"] for c in captions]
    vectors = stored_vectors(store, "clip_image", figures, "tiny-clip")
    assert len(vectors) == 3 and next(iter(vectors.values())).shape == (16,)
    assert embedded_ids(store, "clip_image", "another-model") == set()
    again = run_embed(store, s, models=Provider(clip=clip_model)).to_dict()
    assert sum(v["embedded"] for v in again["spaces"].values()) == 0


def test_undecodable_image_is_counted_not_written(store, settings, clip_model):
    add_sample(store, 2)
    bad = store.page("figures", columns=["figure_id"], limit=1)[0]["figure_id"]
    store.update_where("figures", f"figure_id = '{bad}'", {"image_bytes": b"not an image"})
    s = step_settings(settings, embed=EmbedSettings(spaces=["clip_image"]))
    report = run_embed(store, s, models=Provider(clip=clip_model)).to_dict()
    assert report["spaces"]["clip_image"] == {
        "model": "tiny-clip",
        "items": 2,
        "already": 0,
        "embedded": 1,
        "failed": 1,
    }
    assert bad not in embedded_ids(store, "clip_image", "tiny-clip")


def test_cancel_between_batches_keeps_written_batches(store, settings, minilm):  # noqa: F811
    add_sample(store, 5)
    token = CancelToken()

    class Stop:
        def start(self, *a):
            pass

        def advance(self, n=1):
            token.cancel()

        def log(self, m):
            pass

    s = step_settings(settings, embed=EmbedSettings(spaces=["text_caption"], batch_size=2))
    from microvqa_tui.errors import Cancelled

    with pytest.raises(Cancelled):
        run_embed(store, s, models=Provider(text=minilm), progress=Stop(), cancel=token)
    assert len(embedded_ids(store, "text_caption", minilm.model_id)) == 2
    rest = run_embed(store, s, models=Provider(text=minilm)).to_dict()
    assert rest["spaces"]["text_caption"]["embedded"] == 3


def test_unknown_space_is_a_config_error(store, settings):
    from microvqa_tui.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown embedding spaces"):
        run_embed(
            store, step_settings(settings, embed=EmbedSettings(spaces=["nope"])), models=Provider()
        )
