"""One rule for the caption of an item, used by stage 3, selection, the layout, export and
signals: the item's own caption, else its figure's longest; rejected captions never chosen."""

from __future__ import annotations

from microvqa_tui.common.captions import ItemCaption, caption_texts, item_captions
from store.schema import utcnow


def _fill(store) -> None:
    now = utcnow()
    captions = [
        ("c-short", "f1", "Short caption."),
        ("c-long", "f1", "A much longer caption of the first figure."),
        ("c-tie-b", "f2", "same length b"),
        ("c-tie-a", "f2", "same length a"),
    ]
    store.upsert(
        "captions",
        [{"caption_id": c, "figure_id": f, "text": t, "created_at": now} for c, f, t in captions],
    )
    qas = [("q-own", "f1", "c-short"), ("q-none", "f1", ""), ("q-tie", "f2", "")]
    store.upsert(
        "qas",
        [
            {
                "qa_id": q,
                "figure_id": f,
                "caption_id": c,
                "question": "Which stain is used?",
                "answer": "H&E",
                "task_type": "expert_visual_understanding",
                "origin": "stage1",
                "created_at": now,
            }
            for q, f, c in qas
        ],
    )


def _qas(store) -> list[dict]:
    return store.rows("qas", columns=["qa_id", "figure_id", "caption_id"])


def test_own_caption_first_else_the_figures_longest_with_ties_by_id(store):
    _fill(store)
    texts = caption_texts(store, _qas(store), key="qa_id")
    assert texts == {
        "q-own": "Short caption.",
        "q-none": "A much longer caption of the first figure.",
        "q-tie": "same length a",
    }


def test_an_mcq_finds_its_caption_through_its_qa(store):
    _fill(store)
    mcqs = [
        {"mcq_id": "m1", "qa_id": "q-own", "figure_id": "f1"},
        {"mcq_id": "m2", "qa_id": "", "figure_id": "f2"},
        {"mcq_id": "m3", "qa_id": "", "figure_id": "f-without-captions"},
    ]
    assert caption_texts(store, mcqs, key="mcq_id") == {
        "m1": "Short caption.",
        "m2": "same length a",
        "m3": "",
    }


def test_rejected_captions_are_skipped_and_an_item_left_with_none_maps_to_none(store):
    _fill(store)
    found = item_captions(store, _qas(store), key="qa_id", rejected={"c-short", "c-tie-a"})
    assert found["q-own"] is None  # its own caption is a rejected duplicate
    assert found["q-none"] == ItemCaption("c-long", "A much longer caption of the first figure.")
    assert found["q-tie"] == ItemCaption("c-tie-b", "same length b")
    found = item_captions(store, _qas(store), key="qa_id", rejected={"c-tie-a", "c-tie-b"})
    assert found["q-tie"] is None


def test_without_fallback_only_the_own_caption_counts(store):
    _fill(store)
    texts = caption_texts(store, _qas(store), key="qa_id", fallback=False)
    assert texts == {"q-own": "Short caption.", "q-none": "", "q-tie": ""}
