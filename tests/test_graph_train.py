"""HiCQA-Graph training, scoring and filtering on planted data sets, and the store step."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from microvqa_tui.errors import Cancelled, PipelineError
from microvqa_tui.pipeline.graph.inputs import SIGNAL_DIRECTIONS, GraphInputs, SignalTable
from microvqa_tui.pipeline.graph.pipeline import fit_and_filter, human_array
from microvqa_tui.pipeline.graph.run import human_labels_from_store, run_graph
from microvqa_tui.pipeline.graph.train import load_model, roc_auc
from microvqa_tui.progress import CancelToken, RecordingProgress
from microvqa_tui.vocabulary import GRAPH_AT_CUT, GRAPH_LOW_SCORE, REVIEWER_REJECTED

try:
    from tests.graph_helpers import (  # one_thread: an autouse fixture
        fast_run_settings,
        fast_settings,
        fill_store,
        one_thread,
        small_planted,
    )
except ImportError:  # pytest's rootdir-relative import without a tests package
    from graph_helpers import (  # type: ignore[no-redef]
        fast_run_settings,
        fast_settings,
        fill_store,
        one_thread,  # noqa: F401 - an autouse fixture
        small_planted,
    )


@pytest.fixture(scope="module")
def planted_data():
    return small_planted(120, seed=7)


@pytest.fixture(scope="module")
def outcome(planted_data):
    return fit_and_filter(planted_data.inputs, fast_settings())


def test_corrupted_qas_score_lower_than_clean_ones(planted_data, outcome):
    auc = roc_auc(planted_data.consistent, outcome.scores)
    assert auc is not None and auc > 0.8
    assert outcome.scores.min() >= 0.0 and outcome.scores.max() <= 1.0
    m = outcome.metrics
    assert m["epochs_run"] >= 1 and m["val_n"] > 0 and m["label_synthetic"] > 0


def test_training_is_deterministic_with_a_seed(planted_data, outcome):
    again = fit_and_filter(planted_data.inputs, fast_settings())
    assert np.array_equal(again.scores, outcome.scores)
    other = fit_and_filter(planted_data.inputs, fast_settings(seed=1))
    assert not np.array_equal(other.scores, outcome.scores)


def test_filter_keeps_the_fraction_and_explains_every_hold_out(planted_data, outcome):
    n = planted_data.inputs.n_qa
    f = outcome.filtered
    assert f.n_kept == int(np.floor(0.75 * n + 0.5))
    names = planted_data.inputs.signals.names
    naming = 0
    has_neighbours = outcome.graph.knn["qa"][0][:, 0] >= 0
    for keep, reason, score, nbrs in zip(
        f.keep, f.reasons, outcome.scores, has_neighbours, strict=True
    ):
        if keep:
            assert reason == "" and score >= f.threshold
            continue
        code, _, detail = reason.partition(": ")
        assert code in (GRAPH_LOW_SCORE, GRAPH_AT_CUT) and detail.startswith(f"score {score:.2f}")
        assert ("nearest QAs also held out" in reason) == nbrs
        named = re.findall(r"(\w+) -?[\d.]+ \((low|high)\)", reason)
        if not named:
            assert "no signal on its weak side" in reason, reason
            continue
        naming += 1
        for name, side in named:  # only signals on their weak side are named
            assert name in names
            assert side == ("low" if SIGNAL_DIRECTIONS[name] > 0 else "high"), reason
    # Most hold-outs have a signal to blame; the rest are the graph's own doing.
    assert naming >= 0.7 * f.n_held_out, (naming, f.n_held_out)


def test_human_labels_move_the_labelled_scores_their_way(planted_data, outcome):
    ids = planted_data.inputs.qa_ids
    order = np.argsort(outcome.scores)
    rejected = order[-6:]  # the model likes these; a reviewer does not
    accepted = order[:6]  # and the other way round
    labels = {ids[i]: 0 for i in rejected} | {ids[i]: 1 for i in accepted}
    human = human_array(ids, labels)
    retrained = fit_and_filter(planted_data.inputs, fast_settings(), human=human)
    before, after = outcome.scores, retrained.scores
    assert np.all(after[rejected] < before[rejected])
    assert np.all(after[accepted] > before[accepted])
    # Reviewer decisions also decide the status.
    assert not retrained.filtered.keep[rejected].any()
    assert retrained.filtered.keep[accepted].all()
    assert retrained.metrics["label_human"] == 12


def test_missing_signals_are_handled(planted_data):
    inputs = planted_data.inputs
    # NLI entirely absent.
    keep = [j for j, n in enumerate(inputs.signals.names) if not n.startswith("nli_")]
    no_nli = SignalTable(
        [inputs.signals.names[j] for j in keep],
        inputs.signals.values[:, keep],
        inputs.signals.mask[:, keep],
    )
    result = fit_and_filter(
        GraphInputs(**{**inputs.__dict__, "signals": no_nli}), fast_settings(epochs=30)
    )
    assert np.isfinite(result.scores).all()
    assert roc_auc(planted_data.consistent, result.scores) > 0.6
    # No signal at all and no embeddings: synthetic negatives against the rest still train.
    bare = GraphInputs(
        qa_ids=inputs.qa_ids,
        figure_ids=inputs.figure_ids,
        caption_ids=inputs.caption_ids,
        qa_figure=inputs.qa_figure,
        qa_caption=inputs.qa_caption,
        caption_figure=inputs.caption_figure,
        signals=SignalTable.empty(inputs.n_qa),
    )
    result = fit_and_filter(bare, fast_settings(epochs=10))
    assert np.isfinite(result.scores).all()
    assert all(r.endswith("no signal available") for r in result.filtered.reasons if r)


# ---------------------------------------------------------------------------- the store step


@pytest.fixture
def filled(store):
    data = small_planted(40, seed=11)
    return store, data, fill_store(store, data)


def test_run_graph_writes_statuses_scores_reasons_edges_and_the_run(filled, settings):
    store, data, ids = filled
    progress = RecordingProgress()
    report = run_graph(store, settings, progress=progress, human_labels={}, seed=0)
    n = data.inputs.n_qa
    assert report.qas == n and report.kept == int(np.floor(0.75 * n + 0.5))
    assert report.kept + report.held_out == n
    assert "clip_image_caption" in report.signals and "text_qa" in report.embedding_spaces
    assert [p[0] for p in progress.phases][:3] == [
        "graph: reading store",
        "graph: building",
        "graph: training",
    ]

    rows = store.page("qas", columns=["qa_id", "status", "score", "reason"], limit=n + 10)
    assert len(rows) == n
    assert {r["status"] for r in rows} == {"kept", "held_out"}
    assert sum(r["status"] == "kept" for r in rows) == report.kept
    for r in rows:
        assert 0.0 <= r["score"] <= 1.0
        assert (r["reason"] == "") == (r["status"] == "kept")

    edges = store.page("edges", where=f"run_id = '{report.run_id}'", limit=100_000)
    assert len(edges) == report.edges_written
    relations = {e["relation"] for e in edges}
    assert relations == {"depicts", "asks", "about", "knn"}
    about = [e for e in edges if e["relation"] == "about"]
    assert len(about) == n and {e["src_id"] for e in about} == set(ids["qa_ids"])
    attrs = json.loads(about[0]["attrs_json"])
    assert "score" in attrs and "text_caption_qa" in attrs
    assert {e["src_type"] for e in edges if e["relation"] == "knn"} == {"image", "caption", "qa"}

    run = store.get("runs", report.run_id)
    assert run["status"] == "done" and run["step"] == "graph"
    counts = json.loads(run["counts_json"])
    assert counts["kept"] == report.kept and "val_auc" in counts["metrics"]
    folder = Path(report.run_dir)
    assert (folder / "model.pt").is_file()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["run_id"] == report.run_id and metrics["history"]
    assert load_model(folder) is not None


def test_run_graph_uses_human_labels_and_overrides(filled):
    store, _data, ids = filled
    qa = ids["qa_ids"][0]
    report = run_graph(store, fast_run_settings(), human_labels={qa: 0}, keep_fraction=0.9)
    assert report.human_labels == 1
    row = store.get("qas", qa)
    assert row["status"] == "held_out" and row["reason"].startswith(f"{REVIEWER_REJECTED}: ")


def test_run_graph_without_qas_says_so(store, settings):
    with pytest.raises(PipelineError, match="no QAs"):
        run_graph(store, settings)


def test_cancelled_run_leaves_the_qas_untouched(filled):
    store, _, _ = filled
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        run_graph(store, fast_run_settings(), cancel=cancel)
    statuses = {r["status"] for r in store.page("qas", columns=["status"], limit=1000)}
    assert statuses == {"pending"}


def _scores_by_id(store) -> dict[str, tuple[float, str, str]]:
    rows = store.rows("qas", columns=["qa_id", "score", "status", "reason"])
    return {r["qa_id"]: (r["score"], r["status"], r["reason"]) for r in rows}


def test_scores_do_not_depend_on_the_order_the_store_returns_rows_in(tmp_path):
    from store import open_store

    data = small_planted(40, seed=11)
    first, second = open_store(tmp_path / "a"), open_store(tmp_path / "b")
    fill_store(first, data)
    fill_store(second, data, order=np.random.default_rng(3).permutation(data.inputs.n_qa))
    for store in (first, second):
        run_graph(store, fast_run_settings(), human_labels={}, seed=0)
    assert _scores_by_id(first) == _scores_by_id(second)


def test_a_store_with_reasons_of_another_code_set_is_rewritten_by_the_next_run(filled, monkeypatch):
    """A run records the reason codes it writes; a store written with other ones (an older
    version's free text) is not up to date, and the next run gives every reason a code."""
    from microvqa_tui.pipeline.graph import run as graph_run
    from microvqa_tui.vocabulary import GRAPH_REASONS

    store, _data, _ids = filled
    settings = fast_run_settings()
    with monkeypatch.context() as patch:
        patch.setattr(graph_run, "GRAPH_REASONS", ())
        old = run_graph(store, settings)
    held = store.rows("qas", "status = 'held_out'", ["qa_id"])
    legacy = [
        {"qa_id": r["qa_id"], "reason": "score 0.10 < 0.50: no signal available"} for r in held
    ]
    store.upsert("qas", [{**store.get("qas", r["qa_id"]), **r} for r in legacy])
    again = run_graph(store, settings)
    assert not again.up_to_date and again.fingerprint != old.fingerprint
    reasons = [r["reason"] for r in store.rows("qas", "status = 'held_out'", ["reason"])]
    assert len(reasons) == len(held) > 0
    assert all(reason.partition(": ")[0] in GRAPH_REASONS for reason in reasons), reasons
    assert run_graph(store, settings).up_to_date


def test_a_rerun_changes_nothing_until_a_reviewer_decides(filled):
    from microvqa_tui.services.review import Reviewer

    store, _data, _ids = filled
    settings = fast_run_settings()
    first = run_graph(store, settings)
    before = _scores_by_id(store)
    again = run_graph(store, settings)
    assert again.up_to_date and not first.up_to_date
    assert (again.kept, again.held_out) == (first.kept, first.held_out)
    assert again.fingerprint == first.fingerprint and _scores_by_id(store) == before
    # Our own write reorders the table; a forced retrain still gives the very same scores.
    forced = run_graph(store, settings, force=True)
    assert not forced.up_to_date and _scores_by_id(store) == before

    # A reviewer rejects the best-scored QA and accepts the worst: the next run retrains
    # on those decisions (read through `human_labels_from_store`) and their scores move.
    ranked = sorted(before, key=lambda q: before[q][0])
    worst, best = ranked[0], ranked[-1]
    reviewer = Reviewer(store, "tester")
    reviewer.reject("qa", best)
    reviewer.accept("qa", worst)
    assert human_labels_from_store(store) == {best: 0, worst: 1}
    retrained = run_graph(store, settings)
    after = _scores_by_id(store)
    assert not retrained.up_to_date and retrained.human_labels == 2
    assert after[best][0] < before[best][0] and after[worst][0] > before[worst][0]
    assert after[best][1] == "held_out" and after[best][2].startswith(f"{REVIEWER_REJECTED}: ")
    assert after[worst][1] == "kept"
    assert run_graph(store, settings).up_to_date
