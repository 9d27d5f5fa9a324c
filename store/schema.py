"""One schema definition (LanceModel) per table.

Conventions: every table has a string primary key `<thing>_id`; times are UTC; free-form
extras are JSON strings (`*_json`) so the schema stays stable when sources differ.
Statuses, origins and other stored words come from `microvqa_tui.vocabulary`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

import pyarrow as pa
from lancedb.pydantic import LanceModel, Vector
from pydantic import Field

from microvqa_tui.vocabulary import DUP_PENDING, REVIEW_UNREVIEWED, STATUS_PENDING

# Columns that hold human review state. They have one owner, the review service
# (`microvqa_tui.services.review` and the duplicate-group rules it applies): a pipeline step
# never writes them, so a step running while someone reviews cannot revert a decision.
REVIEW_COLUMNS: dict[str, tuple[str, ...]] = {"mcqs": ("review",)}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Figure(LanceModel):
    """An image, content-addressed by the hash of its bytes."""

    figure_id: str
    content_hash: str  # full sha256 hex of the image bytes
    image_bytes: bytes | None = None  # None when only the path is kept
    image_path: str = ""  # original location (file, or member inside a tar/parquet)
    width: int
    height: int
    format: str  # PNG, JPEG, TIFF, ...
    mode: str  # Pillow mode: RGB, L, I;16 ...
    byte_size: int
    source_kind: str  # folder | manifest | parquet | webdataset | spatial
    source: str  # the file or folder it came from
    source_ref: str = ""  # row number, tar member, file name inside the source
    original_id: str = ""  # the id the source gave it
    article_id: str = ""  # source article (e.g. PMC id): splits never cross it
    license: str = ""
    attribution: str = ""
    meta_json: str = "{}"  # every other field the source had
    ingested_at: datetime
    run_id: str = ""


class Caption(LanceModel):
    """A caption of a figure; a figure may have several (from different sources)."""

    caption_id: str  # text_id(figure_id, text)
    figure_id: str
    text: str
    source: str = ""
    source_ref: str = ""
    created_at: datetime
    run_id: str = ""


class QA(LanceModel):
    """An open question–answer pair about a figure (generated in stage 1 or imported)."""

    qa_id: str  # text_id(figure_id, question, answer)
    figure_id: str
    caption_id: str = ""
    question: str
    answer: str
    task_type: str  # one of TASK_TYPES (or the source's own label / TASK_UNKNOWN for imports)
    evidence: str = ""  # the caption span the answer rests on; an import's CoT / rationale
    origin: str  # stage1 | imported (an imported QA, or the QA behind an imported MCQ)
    model: str = ""
    prompt_version: str = ""
    status: str = STATUS_PENDING  # pending | kept | held_out
    reason: str = ""  # why held out
    score: float | None = None  # graph consistency score
    created_at: datetime
    run_id: str = ""


class MCQ(LanceModel):
    """A multiple-choice item in the MicroVQA++ layout (0-based `correct_index`)."""

    mcq_id: str
    qa_id: str = ""  # the QA it was made from; an imported MCQ's own QA (its question + answer)
    figure_id: str  # the first image; `image_ids` lists all when there are several
    image_ids: list[str] = Field(default_factory=list)
    question: str
    choices: list[str]
    correct_index: int
    correct_answer: str
    cot: str = ""
    task_str: str = ""
    family: str = "caption"  # caption | imported | spatial:<family>
    bloom_level: int | None = None
    bloom_confidence: float | None = None
    image_free_pass_rate: float | None = None
    pass_rate: float | None = None
    difficulty_tier: str = ""
    status: str = STATUS_PENDING
    reason: str = ""
    review: str = REVIEW_UNREVIEWED
    origin: str = ""
    model: str = ""
    # What decides resumability, as columns (a run filters on them instead of parsing
    # params_json): the Stage 3 prompt+model version it was made with, and the selection
    # version it was last checked with ("" = not checked).
    prompt_version: str = ""
    selection_version: str = ""
    params_json: str = "{}"
    created_at: datetime
    run_id: str = ""
    # the prompt version stage 3 regenerated this MCQ's QA with ("" while it is current);
    # such an MCQ is held out with reason `superseded`
    superseded_by: str = ""


class Signal(LanceModel):
    """One consistency signal of a QA (or a figure–caption pair), with the model behind it."""

    signal_id: str  # text_id(item_id, name, model)
    item_id: str  # qa_id, or caption_id for pair-level signals
    figure_id: str
    name: str  # nli_entailment, clip_image_qa, text_caption_qa, agent_agreement, ...
    value: float | None = None
    available: bool = True  # False when the model was missing: never faked
    model: str = ""
    detail: str = ""
    created_at: datetime
    run_id: str = ""


class Edge(LanceModel):
    """A graph edge of the HiCQA-Graph, kept so the TUI can show a QA's neighbourhood."""

    edge_id: str
    run_id: str
    src_type: str  # image | caption | qa
    src_id: str
    dst_type: str
    dst_id: str
    relation: str  # depicts | asks | about | knn
    weight: float = 0.0
    attrs_json: str = "{}"


class Decision(LanceModel):
    """The audit trail: every human decision, never updated, only appended."""

    decision_id: str
    item_type: str  # mcq | qa | dup_group
    item_id: str
    action: str  # accept | reject | edit | undo
    changes_json: str = "{}"  # {"field": [before, after]} for edits
    user: str
    at: datetime
    note: str = ""


class Run(LanceModel):
    """One execution of a pipeline step: what ran, with which config and models, and how it went."""

    run_id: str
    step: str
    status: str  # running | done | failed | cancelled | interrupted
    started_at: datetime
    finished_at: datetime | None = None
    config_json: str = "{}"
    models_json: str = "{}"
    counts_json: str = "{}"
    timings_json: str = "{}"
    message: str = ""


class Quarantine(LanceModel):
    """An input or model output that could not be used, with where it came from and why.

    Code reads the typed fields (`item_kind`, `item_id`, `task_type`, `attempt`, `version`);
    `source` and `ref` are what a person reads, and make the id. Rows are built by one
    writer, `microvqa_tui.common.quarantine`. Stores written before the typed fields existed
    gain them when opened (`store.migrate`).
    """

    quarantine_id: str  # text_id(stage, source, ref, reason)
    stage: str  # ingest | stage1 | mcq | ...
    source: str  # ingest: the file or folder; stage1: task@version#attempt; mcq: the qa_id
    ref: str = ""  # ingest: the place in the source; stage1: the caption_id; mcq: version#attempt
    reason: str  # short machine-readable code (vocabulary.QUARANTINE_REASONS)
    detail: str = ""  # the human-readable message
    payload: str = ""  # an excerpt of the offending input or model output
    created_at: datetime
    run_id: str = ""
    # New columns go last: a migrated store appends them, so every store has one column order.
    item_kind: str = ""  # input | caption | qa (vocabulary.ITEM_KINDS)
    item_id: str = ""  # the input's place, the caption_id or the qa_id
    task_type: str = ""  # the task type a stage 1 attempt asked for
    attempt: int = 0  # which attempt on the item (stage 1 from 0, stage 3 from 1)
    version: str = ""  # the prompt version the attempt was made with


class DupGroup(LanceModel):
    """A group of near-duplicate items found by `microvqa dedup`; nothing is deleted.

    `member_ids` are figure ids (kind image), caption ids (caption) or mcq ids (question);
    `similarities[i]` is member i's similarity to the keeper (1.0 for the keeper itself).
    Members from another store (`dedup --against`) appear as `ext:<id>`.
    The group id is content-addressed from kind and members, so re-running dedup keeps the
    decisions already taken on an unchanged group.
    """

    group_id: str  # text_id("dup", kind, *sorted(member_ids))
    kind: str  # image | caption | question
    member_ids: list[str]
    similarities: list[float]
    size: int
    method: str  # clip | phash | minilm | tfidf (what found the links)
    threshold: float
    max_similarity: float = 0.0  # strongest link inside the group
    min_similarity: float = 0.0  # weakest link that joined the group
    keeper_id: str
    keeper_reason: str = ""
    decision: str = DUP_PENDING  # pending | resolved | dismissed | superseded
    decided_by: str = ""
    decided_at: datetime | None = None
    # members from another store (`dedup --against`), also listed in member_ids as ext:<id>
    external_ids: list[str] = Field(default_factory=list)
    links_json: str = "[]"  # [[member_a, member_b, similarity], ...] that formed the group
    created_at: datetime
    run_id: str = ""


TABLES: dict[str, tuple[type[LanceModel], str]] = {
    "figures": (Figure, "figure_id"),
    "captions": (Caption, "caption_id"),
    "qas": (QA, "qa_id"),
    "mcqs": (MCQ, "mcq_id"),
    "signals": (Signal, "signal_id"),
    "edges": (Edge, "edge_id"),
    "decisions": (Decision, "decision_id"),
    "runs": (Run, "run_id"),
    "quarantine": (Quarantine, "quarantine_id"),
    "dup_groups": (DupGroup, "group_id"),
}


@cache
def embedding_model(dim: int) -> type[LanceModel]:
    """Schema of an embedding table (`emb_<space>`): one vector per item in one model's space.

    Embedding spaces differ in dimension (CLIP 512, MiniLM 384), hence one table per space,
    all sharing this definition.
    """

    class Embedding(LanceModel):
        item_id: str
        figure_id: str = ""
        vector: Vector(dim)  # type: ignore[valid-type]
        model: str

    Embedding.__name__ = f"Embedding{dim}"
    return Embedding


@cache
def arrow_schema(table: str) -> pa.Schema:
    return TABLES[table][0].to_arrow_schema()
