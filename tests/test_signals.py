"""Signals: statement conversion, availability flags, tiny NLI/CLIP, agent, resumability."""

from __future__ import annotations

import numpy as np
import pytest

from microvqa_tui.pipeline.signals import SignalSettings, run_signals, to_statement
from microvqa_tui.pipeline.signals.agent import token_f1
from microvqa_tui.vocabulary import SIGNAL_NAMES
from tests.model_helpers import minilm, model_root, tiny_clip, tiny_nli_dir  # noqa: F401
from tests.stage_helpers import FakeLLM, Provider, add_qa, add_sample, step_settings


# --------------------------------------------------------------------------- statements
@pytest.mark.parametrize(
    ("question", "answer", "statement"),
    [
        ("What stain is used?", "H&E", "The stain used is H&E."),
        ("What is the stain used?", "H&E.", "The stain used is H&E."),
        ("What is shown in panel B?", "Nevus cells", "Nevus cells is shown in panel B."),
        ("What colour are the nuclei?", "Blue", "The nuclei are blue."),
        (
            "Where are the nevus cells?",
            "In the mid dermis",
            "The nevus cells are in the mid dermis.",
        ),
        ("Where are the cells located?", "at the edge", "The cells are located at the edge."),
        ("How many nuclei are visible?", "Three", "Three nuclei are visible."),
        (
            "How are the nuclei arranged?",
            "In a single row",
            "The nuclei are arranged in a single row.",
        ),
        (
            "What does the brown signal indicate?",
            "FHL2 expression",
            "The brown signal indicates FHL2 expression.",
        ),
        ("What do the arrows point to?", "Mitotic figures", "The arrows point to mitotic figures."),
        (
            "Which experiment would test whether nuclei divide?",
            "Live imaging with a DNA dye",
            "The experiment that would test whether nuclei divide is live imaging with a DNA dye.",
        ),
        ("What cell line is used?", "HeLa cells", "The cell line used is HeLa cells."),
        ("Which cells lie in the dermis?", "Nevus cells", "Nevus cells lie in the dermis."),
        (
            "What type of structure surrounds the nest?",
            "A fibrous capsule",
            "A fibrous capsule surrounds the nest.",
        ),
        (
            "Why do the cells look pale?",
            "the cells are pale because they store glycogen",
            "The cells are pale because they store glycogen.",
        ),
        ("Is the nucleus stained?", "Yes", "Is the nucleus stained? Yes."),
        ("Why pale?", "glycogen", "Why pale? Glycogen."),
        (
            "What stain is the section stained with?",
            "H&E",
            "What stain is the section stained with? H&E.",
        ),
        ("", "Nevus cells", "Nevus cells."),
        ("What is shown?", "", "What is shown."),
    ],
)
def test_statement_conversion(question, answer, statement):
    assert to_statement(question, answer) == statement


def test_token_f1():
    assert token_f1("The nevus cells", "nevus cells") == 1.0
    assert token_f1("H&E", "Masson trichrome") == 0.0
    assert 0 < token_f1("nevus cells in the dermis", "nevus cells") < 1
    assert token_f1("", "") == 1.0


# --------------------------------------------------------------------------- the step
def _qas(store, n=2):
    captions = add_sample(store, n)
    ids = [
        add_qa(
            store, c["figure_id"], c["caption_id"], "Which cells lie in the dermis?", "Nevus cells"
        )
        for c in captions
    ]
    return captions, ids


def _signals(store):
    rows = store.page("signals", limit=1000)
    return {(r["item_id"], r["name"]): r for r in rows}


class AgentLLM(FakeLLM):
    """Answers from the caption with its first words; says 'yes' to every verdict."""

    def __init__(self, model_id="fake-agent"):
        super().__init__(self._reply, model_id)

    @staticmethod
    def _reply(messages, schema, n):
        if "supported" in schema["properties"]:
            return {"supported": "yes" if n % 4 != 0 else "no"}
        return {"answer": "Nevus cells in the dermis"}


def test_missing_models_are_written_unavailable_never_faked(store, settings, minilm):  # noqa: F811
    _, ids = _qas(store)
    agent = AgentLLM()
    s = step_settings(settings)
    report = run_signals(store, s, models=Provider(text=minilm, llm=agent))
    out = report.to_dict()
    assert set(out["unavailable"]) == {"nli", "clip"}
    assert "pull nli" in out["unavailable"]["nli"]
    rows = _signals(store)
    # one row per (QA, signal), plus the pair-level rows of the one figure-caption signal
    # that needs no missing model (pixel descriptor + MiniLM, no CLIP)
    assert len([k for k in rows if k[0] in ids]) == len(ids) * len(SIGNAL_NAMES)
    assert {k[1] for k in rows if k[0] not in ids} == {"image_neighbour_caption_agreement"}
    for qa in ids:
        for name in (
            "nli_entail",
            "nli_neutral",
            "nli_contradict",
            "clip_image_caption",
            "clip_image_qa",
        ):
            row = rows[(qa, name)]
            assert row["available"] is False and row["value"] is None
            assert row["detail"].startswith("model missing: ")
        pixel = rows[(qa, "image_neighbour_caption_agreement")]
        assert pixel["available"] and pixel["model"] == f"pixel-stats-v1+{minilm.model_id}"
        text = rows[(qa, "text_caption_qa")]
        assert text["available"] and 0 < text["value"] <= 1 and text["model"] == minilm.model_id
        agree = rows[(qa, "agent_agreement")]
        assert agree["available"] and agree["value"] > 0.5
        assert agree["model"] == f"fake-agent+{minilm.model_id}"
        assert "agent answer: Nevus cells in the dermis" in agree["detail"]
        assert rows[(qa, "agent_supported")]["value"] in (0.0, 1.0)
    assert out["coverage"]["text_caption_qa"] == 1.0 and out["coverage"]["nli_entail"] == 0.0
    assert out["agent_source"] == "caption"
    # the agent got the caption and the question
    first = agent.calls[0]["messages"][-1]["content"]
    assert "Which cells lie in the dermis?" in first and "Figure caption" in first
    # resumable: nothing to compute while the models are still missing
    agent2 = AgentLLM()
    again = run_signals(store, s, models=Provider(text=minilm, llm=agent2))
    assert again.qas_processed == 0 and agent2.calls == []


def test_tiny_nli_and_clip_replace_placeholders(store, settings, tiny_nli_dir, tiny_clip):  # noqa: F811
    from microvqa_tui.models.clip import load_clip
    from microvqa_tui.models.nli import load_nli

    captions, ids = _qas(store)
    s = step_settings(settings, signals=SignalSettings(families=["nli", "clip"]))
    run_signals(store, s, models=Provider())
    assert all(not r["available"] for r in _signals(store).values())

    nli = load_nli(tiny_nli_dir, model_id="nli-test")
    clip = load_clip(tiny_clip.folder, model_id="clip-test")
    report = run_signals(store, s, models=Provider(nli=nli, clip=clip))
    assert report.unavailable == {} and report.qas_processed == 2
    rows = _signals(store)
    for qa in ids:
        probs = [rows[(qa, n)]["value"] for n in ("nli_entail", "nli_neutral", "nli_contradict")]
        assert all(0 <= p <= 1 for p in probs) and abs(sum(probs) - 1) < 1e-4
        assert rows[(qa, "nli_entail")]["model"] == "nli-test"
        assert (
            "hypothesis: The cells that lie in the dermis" not in rows[(qa, "nli_entail")]["detail"]
        )
        assert rows[(qa, "nli_entail")]["detail"].startswith("hypothesis: ")
        for name in ("clip_image_caption", "clip_image_qa"):
            assert rows[(qa, name)]["available"] and -1 <= rows[(qa, name)]["value"] <= 1
    # the placeholders are gone: one row per (QA, signal) and pair-level caption rows
    assert all(r["available"] for r in rows.values())
    for c in captions:
        assert rows[(c["caption_id"], "clip_image_caption")]["available"]
    assert report.coverage["nli_entail"] == 1.0
    # vectors computed on the way are stored for the graph and the next run
    assert "emb_clip_image" in store.table_names()
    again = run_signals(store, s, models=Provider(nli=nli, clip=clip))
    assert again.qas_processed == 0


def test_qa_without_caption_and_image_agent(store, settings, minilm):  # noqa: F811
    captions = add_sample(store, 1)
    orphan = add_qa(store, captions[0]["figure_id"], "", "What is visible here?", "Skin layers")
    vlm = AgentLLM("fake-vlm")
    s = step_settings(
        settings,
        signals=SignalSettings(
            families=["nli", "agent"], agent_source="image", agreement="token_f1"
        ),
    )
    report = run_signals(store, s, models=Provider(vlm=vlm, text=minilm))
    rows = _signals(store)
    assert rows[(orphan, "nli_entail")]["available"] is False
    assert "model missing" in rows[(orphan, "nli_entail")]["detail"]
    agree = rows[(orphan, "agent_agreement")]
    assert agree["available"] and agree["model"] == "fake-vlm+token_f1"
    assert agree["value"] == pytest.approx(token_f1("Nevus cells in the dermis", "Skin layers"))
    assert report.agent_source == "image"
    images = vlm.calls[0]["options"]["images"]
    assert len(images) == 1 and images[0][:4] in (
        b"\xff\xd8\xff\xe0",
        b"\xff\xd8\xff\xe1",
        b"\x89PNG",
    )


def test_agent_failures_are_unavailable_with_reason(store, settings):
    _, ids = _qas(store, 1)

    def reply(messages, schema, n):
        if "supported" in schema["properties"]:
            return {"supported": "maybe"}
        return '{"answer": "cut'

    s = step_settings(settings, signals=SignalSettings(families=["agent"]))
    report = run_signals(store, s, models=Provider(llm=FakeLLM(reply)))
    rows = _signals(store)
    assert report.agent_failures == 2
    assert rows[(ids[0], "agent_agreement")]["available"] is False
    assert "answer failed" in rows[(ids[0], "agent_agreement")]["detail"]
    assert "schema_invalid" in rows[(ids[0], "agent_supported")]["detail"]
    # agreement falls back to token F1 without the text model; the model string says so
    assert rows[(ids[0], "agent_agreement")]["model"] == "fake-llm+token_f1"


def test_limit_and_batches(store, settings):
    _qas(store, 3)
    s = step_settings(settings, signals=SignalSettings(families=["agent"], batch_size=1, limit=2))
    llm = AgentLLM()
    report = run_signals(store, s, models=Provider(llm=llm))
    assert report.qas_processed == 2 and len(llm.calls) == 4
    rest = run_signals(store, s, models=Provider(llm=AgentLLM()))
    assert rest.qas_processed == 1
    np.testing.assert_allclose(rest.coverage["agent_agreement"], 1.0)
