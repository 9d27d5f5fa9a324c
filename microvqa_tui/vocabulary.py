"""The project's words, defined once: statuses, review decisions, origins, task types, Bloom
levels, signal names and quarantine reason codes.

Every layer imports this module (the store, the pipeline, the services, the CLI and the TUI),
so it imports nothing of the project and no third-party library: importing it costs nothing
and it can never take part in an import cycle. The values are stored in the LanceDB tables:
changing one is a data migration, not a rename.
"""

from __future__ import annotations

# ------------------------------------------------------------------ item status
# `qas.status` and `mcqs.status`: what the pipeline decided.
STATUS_PENDING = "pending"  # not judged yet
STATUS_KEPT = "kept"  # passed every check
STATUS_HELD_OUT = "held_out"  # failed a check; `reason` says which; never deleted
STATUS_FLAGGED = "flagged"  # kept, but a check asks a person to look
STATUSES = (STATUS_PENDING, STATUS_KEPT, STATUS_HELD_OUT, STATUS_FLAGGED)

# `mcqs.review`: what a person decided.
REVIEW_UNREVIEWED = "unreviewed"
REVIEW_ACCEPTED = "accepted"
REVIEW_REJECTED = "rejected"
REVIEWS = (REVIEW_UNREVIEWED, REVIEW_ACCEPTED, REVIEW_REJECTED)

# `decisions.action`: one row of the append-only audit trail.
ACTION_ACCEPT = "accept"
ACTION_REJECT = "reject"
ACTION_EDIT = "edit"
ACTION_UNDO = "undo"
DECISION_ACTIONS = (ACTION_ACCEPT, ACTION_REJECT, ACTION_EDIT, ACTION_UNDO)
# The review an accept / reject decision sets on an MCQ.
REVIEW_OF_ACTION = {ACTION_ACCEPT: REVIEW_ACCEPTED, ACTION_REJECT: REVIEW_REJECTED}

# What a reviewer decides on a duplicate group.
GROUP_KEEP_KEEPER = "keep_keeper"  # keep the proposed keeper, reject the other members
GROUP_KEEP_ALL = "keep_all"  # the members are not duplicates: keep them all
GROUP_REJECT = "reject_group"  # reject every member
GROUP_ACTIONS = (GROUP_KEEP_KEEPER, GROUP_KEEP_ALL, GROUP_REJECT)

# `dup_groups.decision` and `dup_groups.kind`.
DUP_PENDING = "pending"  # proposed by `microvqa dedup`; nothing changed yet
DUP_RESOLVED = "resolved"  # a person or a policy kept the keeper and rejected the others
DUP_DISMISSED = "dismissed"  # a person said the members are not duplicates
DUP_SUPERSEDED = "superseded"  # a later run regrouped these members; kept for the audit trail
DUP_DECISIONS = (DUP_PENDING, DUP_RESOLVED, DUP_DISMISSED, DUP_SUPERSEDED)
DUP_KINDS = ("image", "caption", "question")

# `runs.status`.
RUN_RUNNING = "running"
RUN_DONE = "done"
RUN_FAILED = "failed"
RUN_CANCELLED = "cancelled"
# the process died without closing the run (killed, crashed); set by the next run of the step
RUN_INTERRUPTED = "interrupted"
RUN_STATUSES = (RUN_RUNNING, RUN_DONE, RUN_FAILED, RUN_CANCELLED, RUN_INTERRUPTED)

# ------------------------------------------------------------------ origins
# `qas.origin` / `mcqs.origin`: which step made the item.
ORIGIN_STAGE1 = "stage1"  # generated from a caption by the LLM
ORIGIN_STAGE3 = "stage3"  # an MCQ generated from a kept QA
ORIGIN_IMPORTED = "imported"  # read from an existing dataset by ingest
ORIGIN_SPATIAL = "spatial"  # rendered by the spatial generators
ORIGINS = (ORIGIN_STAGE1, ORIGIN_STAGE3, ORIGIN_IMPORTED, ORIGIN_SPATIAL)

# `mcqs.family`: caption | imported | spatial:<generator family>.
FAMILY_CAPTION = "caption"
FAMILY_IMPORTED = "imported"
FAMILY_SPATIAL_PREFIX = "spatial:"

# ------------------------------------------------------------------ task types
TASK_EXPERT_VISUAL_UNDERSTANDING = "expert_visual_understanding"
TASK_HYPOTHESIS_GENERATION = "hypothesis_generation"
TASK_EXPERIMENT_PROPOSAL = "experiment_proposal"
TASK_TYPES = (
    TASK_EXPERT_VISUAL_UNDERSTANDING,
    TASK_HYPOTHESIS_GENERATION,
    TASK_EXPERIMENT_PROPOSAL,
)
TASK_UNKNOWN = "unknown"  # an imported QA whose source names no task type

# ------------------------------------------------------------------ Bloom levels
# As MicroVQA reports them and as the classifier prompt (assets/prompts/bloom_classify.md)
# defines them: 5 is synthesis (design, propose), 6 evaluation (judge, justify). This is the
# original taxonomy's order, not the revised one's (where 5 is "evaluate", 6 "create").
BLOOM_LEVELS: dict[int, str] = {
    1: "recall",
    2: "comprehension",
    3: "application",
    4: "analysis",
    5: "synthesis",
    6: "evaluation",
}


def bloom_label(level: int | None) -> str:
    """`5 Synthesis`: a level as the CLI and the TUI show it ("–" when unknown)."""
    if level is None or level not in BLOOM_LEVELS:
        return "–" if level is None else str(level)
    return f"{level} {BLOOM_LEVELS[level].capitalize()}"


# ------------------------------------------------------------------ signals
# `signals.name`, grouped by the model family that computes them.
SIGNAL_NLI_ENTAIL = "nli_entail"
SIGNAL_NLI_NEUTRAL = "nli_neutral"
SIGNAL_NLI_CONTRADICT = "nli_contradict"
SIGNAL_CLIP_IMAGE_CAPTION = "clip_image_caption"
SIGNAL_CLIP_IMAGE_QA = "clip_image_qa"
SIGNAL_TEXT_CAPTION_QA = "text_caption_qa"
SIGNAL_AGENT_AGREEMENT = "agent_agreement"
SIGNAL_AGENT_SUPPORTED = "agent_supported"
# Model-free pixel-descriptor neighbours + MiniLM (signals/neighbours.py); not CLIP.
SIGNAL_IMAGE_NEIGHBOUR_CAPTION = "image_neighbour_caption_agreement"

FAMILY_SIGNALS: dict[str, tuple[str, ...]] = {
    "nli": (SIGNAL_NLI_ENTAIL, SIGNAL_NLI_NEUTRAL, SIGNAL_NLI_CONTRADICT),
    "clip": (SIGNAL_CLIP_IMAGE_CAPTION, SIGNAL_CLIP_IMAGE_QA),
    "text": (SIGNAL_TEXT_CAPTION_QA,),
    "agent": (SIGNAL_AGENT_AGREEMENT, SIGNAL_AGENT_SUPPORTED),
    "pixel": (SIGNAL_IMAGE_NEIGHBOUR_CAPTION,),
}
SIGNAL_NAMES = tuple(name for names in FAMILY_SIGNALS.values() for name in names)
NLI_SIGNALS = FAMILY_SIGNALS["nli"]
AGENT_SIGNALS = FAMILY_SIGNALS["agent"]

# +1: higher means more consistent; -1: higher means less consistent.
SIGNAL_DIRECTIONS: dict[str, int] = {
    SIGNAL_NLI_ENTAIL: 1,
    SIGNAL_NLI_NEUTRAL: -1,
    SIGNAL_NLI_CONTRADICT: -1,
    SIGNAL_CLIP_IMAGE_CAPTION: 1,
    SIGNAL_CLIP_IMAGE_QA: 1,
    SIGNAL_TEXT_CAPTION_QA: 1,
    SIGNAL_AGENT_AGREEMENT: 1,
    SIGNAL_AGENT_SUPPORTED: 1,
    SIGNAL_IMAGE_NEIGHBOUR_CAPTION: 1,
}

# ------------------------------------------------------------------ quarantine
# `quarantine.stage`: which step refused the input or output.
STAGE_INGEST = "ingest"
STAGE_STAGE1 = "stage1"
STAGE_MCQ = "mcq"

# `quarantine.item_kind`: what `quarantine.item_id` names.
ITEM_INPUT = "input"  # an ingest input: its place inside `quarantine.source` (file, row, member)
ITEM_CAPTION = "caption"  # a caption a stage 1 attempt was made from (caption_id)
ITEM_QA = "qa"  # a QA an MCQ attempt was made from (qa_id)
ITEM_KINDS = (ITEM_INPUT, ITEM_CAPTION, ITEM_QA)

# `quarantine.reason` of stage 1 (and its run counts).
UNPARSABLE = "unparsable_output"  # the model's text is not JSON
GENERATION_FAILED = "generation_failed"  # the model raised (runtime error)
# The call's time limit passed first (a loaded machine): kept for the audit trail, but the
# attempt does not count, so the item stays pending for the next run (stage 1 and 3).
MODEL_TIMEOUT = "model_timeout"
SCHEMA_INVALID = "schema_invalid"  # JSON, but not the fields/types asked for
EVIDENCE_MISSING = "evidence_missing"
EVIDENCE_NOT_IN_CAPTION = "evidence_not_in_caption"
QUESTION_TOO_SHORT = "question_too_short"
QUESTION_NOT_SINGLE = "question_not_single"  # several questions, or one with its answer inline
QUESTION_GENERIC = "question_generic"  # names nothing of the figure ("What does this show?")
FIELD_TRUNCATED = "field_truncated"  # a field hit the schema's maxLength: cut mid-sentence
QUESTION_COPIES_CAPTION = "question_copies_caption"
COPIES_PROMPT = "copies_prompt"  # question or answer repeats the prompt's own wording
ANSWER_EMPTY = "answer_empty"
ANSWER_TOO_SHORT = "answer_too_short"
DUPLICATE_QUESTION = "duplicate_question"

STAGE1_REASONS = (
    UNPARSABLE,
    GENERATION_FAILED,
    MODEL_TIMEOUT,
    SCHEMA_INVALID,
    EVIDENCE_MISSING,
    EVIDENCE_NOT_IN_CAPTION,
    FIELD_TRUNCATED,
    QUESTION_TOO_SHORT,
    QUESTION_NOT_SINGLE,
    QUESTION_GENERIC,
    QUESTION_COPIES_CAPTION,
    COPIES_PROMPT,
    ANSWER_EMPTY,
    ANSWER_TOO_SHORT,
    DUPLICATE_QUESTION,
)

# `quarantine.reason` of stage 3 (MCQ generation), besides UNPARSABLE, GENERATION_FAILED and
# MODEL_TIMEOUT.
NOT_AN_OBJECT = "not_an_object"
ECHOED_PROMPT = "echoed_prompt"
EMPTY_QUESTION = "empty_question"
BAD_OPTIONS = "bad_options"
WRONG_OPTION_COUNT = "wrong_option_count"
EMPTY_OPTION = "empty_option"
DUPLICATE_OPTIONS = "duplicate_options"
ANSWER_NOT_IN_OPTIONS = "answer_not_in_options"
ANSWER_DIFFERS_FROM_QA = "answer_differs_from_qa"
ANSWER_IN_QUESTION = "answer_in_question"
EMPTY_COT = "empty_cot"
COT_OTHER_OPTION = "cot_other_option"
DISTRACTOR_LENGTH = "distractor_length"

MCQ_REASONS = (
    UNPARSABLE,
    GENERATION_FAILED,
    MODEL_TIMEOUT,
    NOT_AN_OBJECT,
    ECHOED_PROMPT,
    EMPTY_QUESTION,
    BAD_OPTIONS,
    WRONG_OPTION_COUNT,
    EMPTY_OPTION,
    DUPLICATE_OPTIONS,
    ANSWER_NOT_IN_OPTIONS,
    ANSWER_DIFFERS_FROM_QA,
    ANSWER_IN_QUESTION,
    EMPTY_COT,
    COT_OTHER_OPTION,
    DISTRACTOR_LENGTH,
)

# `mcqs.reason` of an MCQ held out because stage 3 regenerated its QA with a new prompt
# version; `mcqs.superseded_by` names that version (the fact code reads: "" = current).
SUPERSEDED = "superseded"

# `mcqs.reason` of held-out MCQs, as `<code>: <detail>`: the graph held the QA out, or a
# reasoning check of the selection step failed.
GRAPH_HELD_OUT = "graph_held_out"
COT_LENGTH = "cot_length"
COT_STRUCTURE = "cot_structure"
COT_REPETITION = "cot_repetition"
COT_ANSWER = "cot_answer"
SELECT_REASONS = (COT_LENGTH, COT_STRUCTURE, COT_REPETITION, COT_ANSWER)

# `qas.reason` of a QA the graph held out, as `<code>: <detail>` (the detail, for people, is
# its score, the signals that pulled it down and its nearest QAs); code reads the code only.
GRAPH_LOW_SCORE = "graph_low_score"  # scored under the cut
GRAPH_AT_CUT = "graph_at_cut"  # scored at the cut, ranked below the kept share
REVIEWER_REJECTED = "reviewer_rejected"  # a reviewer rejected it: the graph keeps that verdict
GRAPH_REASONS = (GRAPH_LOW_SCORE, GRAPH_AT_CUT, REVIEWER_REJECTED)
HELD_OUT_REASONS = (SUPERSEDED, GRAPH_HELD_OUT, *SELECT_REASONS, *GRAPH_REASONS)

# `quarantine.reason` of the ingest stage: short, stable codes, with what the CLI and the TUI
# show beside them.
CORRUPT_IMAGE = "corrupt_image"
IMAGE_TOO_LARGE = "image_too_large"
UNSUPPORTED_FORMAT = "unsupported_format"
FILE_TOO_LARGE = "file_too_large"
MISSING_FILE = "missing_file"
UNREADABLE_FILE = "unreadable_file"
MISSING_CAPTION = "missing_caption"
EMPTY_CAPTION = "empty_caption"
CAPTION_TOO_SHORT = "caption_too_short"
CAPTION_TOO_LONG = "caption_too_long"
CAPTION_NOT_UTF8 = "caption_not_utf8"
MALFORMED_ROW = "malformed_row"
UNSAFE_PATH = "unsafe_path"
UNREADABLE_SOURCE = "unreadable_source"
NAME_NOT_UTF8 = "name_not_utf8"

INGEST_REASONS: dict[str, str] = {
    CORRUPT_IMAGE: "the image could not be decoded (corrupt or truncated)",
    IMAGE_TOO_LARGE: "the image has more pixels than ingest.max_pixels (decompression-bomb guard)",
    UNSUPPORTED_FORMAT: "not an image in a supported format (PNG, JPEG, TIFF, WebP, GIF, BMP)",
    FILE_TOO_LARGE: "the file is larger than ingest.max_image_bytes",
    MISSING_FILE: "the image file (or the image of a caption) does not exist",
    UNREADABLE_FILE: "the file exists but cannot be read",
    MISSING_CAPTION: "the image has no caption",
    EMPTY_CAPTION: "the caption is empty",
    CAPTION_TOO_SHORT: "the caption is shorter than ingest.min_caption_chars",
    CAPTION_TOO_LONG: "the caption is longer than ingest.max_caption_chars",
    CAPTION_NOT_UTF8: "the caption is not valid UTF-8",
    MALFORMED_ROW: "the row cannot be parsed or has fields of the wrong type",
    UNSAFE_PATH: "an archive member with an absolute or '..' path, or a link; a manifest path "
    "outside the manifest's folder (see ingest.allow_outside_paths)",
    UNREADABLE_SOURCE: "the rest of an archive or file could not be read (truncated or corrupt)",
    NAME_NOT_UTF8: "a file name, path or text field is not valid UTF-8",
}

# Every code a step may write to `quarantine.reason`, by stage (the writer checks it).
QUARANTINE_REASONS: dict[str, tuple[str, ...]] = {
    STAGE_INGEST: tuple(INGEST_REASONS),
    STAGE_STAGE1: STAGE1_REASONS,
    STAGE_MCQ: MCQ_REASONS,
}
