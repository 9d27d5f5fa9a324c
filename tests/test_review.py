"""The review operations (UI-free): accept/reject/edit/undo/bulk and duplicate-group decisions,
each appended to the audit trail."""

from __future__ import annotations

import json

import pytest

from microvqa_tui.common.decisions import decision_history, effective_labels
from microvqa_tui.services.review import (
    KEEP_ALL,
    KEEP_KEEPER,
    REJECT_GROUP,
    Reviewer,
    ReviewError,
)
from tests.ui_helpers import TickingClock, build_store, mcq_row


@pytest.fixture
def reviewer(store):
    store.insert_new("mcqs", [mcq_row(n) for n in range(10)])
    return Reviewer(store, user="alice", clock=TickingClock())


def review_of(store, mcq_id: str) -> str:
    return store.get("mcqs", mcq_id, ["review"])["review"]


def test_accept_and_reject_update_item_and_append_decisions(store, reviewer):
    accepted = reviewer.accept("mcq", "mcq-0001")
    rejected = reviewer.reject("mcq", "mcq-0002", note="ambiguous")
    assert review_of(store, "mcq-0001") == "accepted"
    assert review_of(store, "mcq-0002") == "rejected"
    assert review_of(store, "mcq-0003") == "unreviewed"
    rows = {r["decision_id"]: r for r in store.page("decisions", limit=10)}
    assert set(rows) == {accepted.decision_id, rejected.decision_id}
    row = rows[rejected.decision_id]
    assert row["user"] == "alice" and row["action"] == "reject" and row["note"] == "ambiguous"
    assert row["item_type"] == "mcq" and row["item_id"] == "mcq-0002"
    assert json.loads(row["changes_json"]) == {
        "review": ["unreviewed", "rejected"],
        "_via": "review",
    }
    assert row["at"] is not None


def test_unknown_item_or_type_is_a_review_error(reviewer):
    with pytest.raises(ReviewError, match="no mcq"):
        reviewer.accept("mcq", "missing")
    with pytest.raises(ReviewError, match="cannot review"):
        reviewer.accept("figure", "x")
    with pytest.raises(ReviewError, match="nothing to undo"):
        reviewer.undo()


def test_edit_records_before_and_after_and_undo_restores(store, reviewer):
    record = reviewer.edit(
        "mcq",
        "mcq-0003",
        {"question": "  a better question? ", "choices": ["w", "x", "y", "z"], "correct_index": 1},
    )
    assert record is not None and record.action == "edit"
    row = store.get("mcqs", "mcq-0003")
    assert row["question"] == "a better question?"
    assert row["choices"] == ["w", "x", "y", "z"]
    assert row["correct_answer"] == "x"
    assert record.fields["question"] == ["question 3?", "a better question?"]
    assert record.fields["correct_answer"] == ["option 3-3", "x"]
    # An edit that changes nothing writes nothing.
    assert reviewer.edit("mcq", "mcq-0003", {"question": "a better question?"}) is None
    assert store.count("decisions") == 1
    reviewer.undo()
    row = store.get("mcqs", "mcq-0003")
    assert row["question"] == "question 3?"
    assert row["choices"] == [f"option 3-{k}" for k in range(4)]
    assert row["correct_answer"] == "option 3-3"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"choices": ["only one"]}, "at least two"),
        ({"choices": ["a", ""]}, "cannot be empty"),
        ({"choices": ["a", "a"]}, "the same"),
        ({"correct_index": 9}, "out of range"),
        ({"question": "   "}, "cannot be empty"),
        ({"status": "kept"}, "cannot edit status"),
    ],
)
def test_invalid_edits_are_refused(store, reviewer, values, message):
    with pytest.raises(ReviewError, match=message):
        reviewer.edit("mcq", "mcq-0004", values)
    assert store.count("decisions") == 0


def test_undo_walks_back_one_decision_at_a_time(store, reviewer):
    reviewer.accept("mcq", "mcq-0001")
    reviewer.reject("mcq", "mcq-0001")
    undo = reviewer.undo()
    assert [u.action for u in undo] == ["undo"]
    assert undo[0].fields == {"review": ["rejected", "accepted"]}
    assert review_of(store, "mcq-0001") == "accepted"
    reviewer.undo()
    assert review_of(store, "mcq-0001") == "unreviewed"
    with pytest.raises(ReviewError):
        reviewer.undo()
    # The audit trail keeps everything: two decisions and two undos.
    actions = [r.action for r in decision_history(store)]
    assert actions == ["accept", "reject", "undo", "undo"]


def test_undo_is_per_user(store, reviewer):
    bob = Reviewer(store, user="bob", clock=reviewer.clock)
    reviewer.accept("mcq", "mcq-0001")
    bob.reject("mcq", "mcq-0002")
    reviewer.undo()
    assert review_of(store, "mcq-0001") == "unreviewed"
    assert review_of(store, "mcq-0002") == "rejected"


def test_bulk_on_a_filter_is_one_undoable_batch(store, reviewer):
    reviewer.accept("mcq", "mcq-0000")
    result = reviewer.bulk("mcq", "accept", where="difficulty_tier = 'easy'")
    easy = [f"mcq-{n:04d}" for n in range(10) if n % 3 == 0]
    assert result.changed == len(easy) - 1 and result.skipped == 1
    assert all(review_of(store, i) == "accepted" for i in easy)
    assert store.count("decisions") == 1 + result.changed
    reviewer.undo()
    # The bulk is undone at once; the earlier single accept stays.
    assert review_of(store, "mcq-0000") == "accepted"
    assert all(review_of(store, i) == "unreviewed" for i in easy[1:])
    reviewer.undo()
    assert review_of(store, "mcq-0000") == "unreviewed"


def test_bulk_by_ids_and_qa_labels(store, reviewer):
    result = reviewer.bulk("mcq", "reject", ids=["mcq-0005", "mcq-0006", "mcq-0005"])
    assert result.changed == 2
    store.insert_new(
        "qas",
        [
            {
                "qa_id": "qa-1",
                "figure_id": "f",
                "question": "q?",
                "answer": "a",
                "task_type": "hypothesis_generation",
                "origin": "stage1",
                "created_at": reviewer.clock(),
            }
        ],
    )
    reviewer.reject("qa", "qa-1")
    reviewer.accept("qa", "qa-1")
    assert effective_labels(store, "qa") == {"qa-1": "accept"}
    reviewer.undo()
    assert effective_labels(store, "qa") == {"qa-1": "reject"}


def test_group_decisions_use_the_dedup_rules_and_undo(store, settings):
    from microvqa_tui.pipeline.dedup.decisions import rejected_members

    ids = build_store(store, settings, qa_figures=4)
    reviewer = Reviewer(store, user="carol", clock=TickingClock())
    groups = {
        store.get("dup_groups", g)["kind"]: store.get("dup_groups", g) for g in ids["dup_groups"]
    }
    question = groups["question"]
    result = reviewer.decide_group(question["group_id"], KEEP_KEEPER)
    keeper, *others = question["member_ids"]
    assert result.outcome["resolved"] == 1 and result.mcqs_changed == len(others)
    assert review_of(store, keeper) == "unreviewed"
    assert all(review_of(store, m) == "rejected" for m in others)
    group = store.get("dup_groups", question["group_id"])
    assert group["decision"] == "resolved" and group["decided_by"] == "carol"
    assert [h.action for h in decision_history(store, item_type="dup_group")] == ["accept"]
    # The review undo leaves group decisions alone; the group undo restores them.
    with pytest.raises(ReviewError, match="nothing to undo"):
        reviewer.undo()
    reviewer.undo_group()
    assert store.get("dup_groups", question["group_id"])["decision"] == "pending"
    assert all(review_of(store, m) == "unreviewed" for m in others)

    image = groups["image"]
    keeper_figure, other_figure = image["member_ids"]
    result = reviewer.decide_group(image["group_id"], REJECT_GROUP)
    assert store.get("dup_groups", image["group_id"])["decision"] == "resolved"
    assert other_figure in rejected_members(store)["image"]  # exports leave it out
    keeper_mcqs = store.page(
        "mcqs", where=f"figure_id = '{keeper_figure}'", columns=["review"], limit=10
    )
    assert keeper_mcqs and all(r["review"] == "rejected" for r in keeper_mcqs)
    assert result.keeper_rejection.changed == len(keeper_mcqs)
    reviewer.undo_group()
    assert store.get("dup_groups", image["group_id"])["decision"] == "pending"
    keeper_mcqs = store.page(
        "mcqs", where=f"figure_id = '{keeper_figure}'", columns=["review"], limit=10
    )
    assert all(r["review"] == "unreviewed" for r in keeper_mcqs)
    reviewer.decide_group(image["group_id"], KEEP_ALL)
    assert store.get("dup_groups", image["group_id"])["decision"] == "dismissed"
    with pytest.raises(ReviewError, match="unknown group action"):
        reviewer.decide_group(image["group_id"], "merge")
