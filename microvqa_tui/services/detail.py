"""Everything the detail pane shows about one item: the item, its figure (as a small image
for the terminal), captions, QA/MCQ, signals, graph neighbours and review decisions.

No Textual here; every read goes through the store's API.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from microvqa_tui.services.views import in_list, quote
from microvqa_tui.vocabulary import STATUS_HELD_OUT

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from store import Store

THUMBNAIL_PX = 640  # images are shrunk to this before they reach the terminal renderer


@dataclass
class Detail:
    """Everything the detail pane shows about one item."""

    item_type: str  # mcq | qa | figure
    item_id: str
    mcq: dict[str, Any] | None = None
    qa: dict[str, Any] | None = None
    figure: dict[str, Any] | None = None
    captions: list[dict[str, Any]] = field(default_factory=list)
    signals: list[dict[str, Any]] = field(default_factory=list)
    neighbours: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    mcqs_of_figure: int = 0
    image: PILImage | None = None
    image_note: str = ""

    @property
    def hold_out_reason(self) -> str:
        for row in (self.mcq, self.qa):
            if row and row.get("status") == STATUS_HELD_OUT:
                return row.get("reason") or "(no reason recorded)"
        return ""

    @property
    def qa_label(self) -> str | None:
        """The reviewer's standing accept/reject of the QA (a label for the graph step)."""
        from microvqa_tui.common.decisions import DecisionRecord, standing_labels  # store: lazy

        if self.qa is None:
            return None
        records = [DecisionRecord.from_row(r) for r in self.decisions if r["item_type"] == "qa"]
        return standing_labels(records).get(self.qa["qa_id"])


FIGURE_COLUMNS = [
    "figure_id",
    "original_id",
    "width",
    "height",
    "format",
    "mode",
    "byte_size",
    "source_kind",
    "source",
    "image_path",
    "article_id",
    "license",
    "attribution",
]


def load_detail(
    store: Store, item_type: str, item_id: str, *, with_image: bool = True, with_graph: bool = True
) -> Detail:
    """Gather an item, its figure, captions, QA, MCQ, signals, graph neighbours and decisions."""
    detail = Detail(item_type, item_id)
    if item_type == "mcq":
        detail.mcq = store.get("mcqs", item_id)
        if detail.mcq is None:
            return detail
        if detail.mcq.get("qa_id"):
            detail.qa = store.get("qas", detail.mcq["qa_id"])
        figure_id = detail.mcq["figure_id"]
    elif item_type == "qa":
        detail.qa = store.get("qas", item_id)
        if detail.qa is None:
            return detail
        figure_id = detail.qa["figure_id"]
        mcqs = store.page("mcqs", where=f"qa_id = {quote(item_id)}", limit=1)
        detail.mcq = mcqs[0] if mcqs else None
    else:
        figure_id = item_id
        detail.mcqs_of_figure = store.count("mcqs", f"figure_id = {quote(figure_id)}")
    detail.figure = store.get("figures", figure_id, FIGURE_COLUMNS)
    caption_where = f"figure_id = {quote(figure_id)}"
    detail.captions = store.page(
        "captions", where=caption_where, columns=["caption_id", "text", "source"], limit=5
    )
    if detail.qa is not None and with_graph:
        qa_id = detail.qa["qa_id"]
        item_ids = [qa_id] + [c["caption_id"] for c in detail.captions]
        detail.signals = store.page(
            "signals",
            where=in_list("item_id", item_ids),
            columns=["item_id", "name", "value", "available", "model", "detail"],
            limit=200,
        )
        detail.signals.sort(key=lambda s: (s["item_id"] != qa_id, s["name"]))
        detail.neighbours = graph_neighbours(store, qa_id)
    decision_ids = [
        i for i in ((detail.mcq or {}).get("mcq_id"), (detail.qa or {}).get("qa_id")) if i
    ]
    if decision_ids:
        rows = store.page(
            "decisions",
            where=in_list("item_id", decision_ids),
            columns=[
                "decision_id",
                "item_type",
                "item_id",
                "action",
                "user",
                "at",
                "note",
                "changes_json",
            ],
            limit=100,
        )
        detail.decisions = sorted(rows, key=lambda r: r["at"])
    if with_image and detail.figure is not None:
        detail.image, detail.image_note = load_image(store, figure_id)
    return detail


def graph_neighbours(store: Store, qa_id: str, limit: int = 12) -> list[dict[str, Any]]:
    """The QA's edges in the graph with the node at the other end (QA question and score)."""
    key = quote(qa_id)
    edges = store.page(
        "edges",
        where=f"src_id = {key} OR dst_id = {key}",
        columns=["src_type", "src_id", "dst_type", "dst_id", "relation", "weight"],
        limit=200,
    )
    edges.sort(key=lambda e: -(e["weight"] or 0.0))
    result = []
    for edge in edges[:limit]:
        outgoing = edge["src_id"] == qa_id
        other_type = edge["dst_type"] if outgoing else edge["src_type"]
        other_id = edge["dst_id"] if outgoing else edge["src_id"]
        result.append(
            {
                "relation": edge["relation"],
                "weight": edge["weight"],
                "type": other_type,
                "id": other_id,
            }
        )
    qa_ids = [n["id"] for n in result if n["type"] == "qa"]
    others = {
        r["qa_id"]: r
        for r in store.get_many("qas", qa_ids, ["qa_id", "question", "score", "status"])
    }
    for neighbour in result:
        other = others.get(neighbour["id"])
        neighbour["text"] = other["question"] if other else ""
        neighbour["score"] = other["score"] if other else None
        neighbour["status"] = other["status"] if other else ""
    return result


def load_image(store: Store, figure_id: str, max_px: int = THUMBNAIL_PX):
    """The figure as a small RGB/L PIL image for the terminal, and a note when it cannot be shown."""
    from pathlib import Path

    from PIL import Image, UnidentifiedImageError

    row = store.get("figures", figure_id, ["image_bytes", "image_path"])
    if row is None:
        return None, "figure not in the store"
    data = row.get("image_bytes")
    try:
        if data:
            image = Image.open(io.BytesIO(data))
        elif row.get("image_path") and Path(row["image_path"]).is_file():
            image = Image.open(row["image_path"])
        else:
            return None, "image bytes not kept in the store"
        image.draft("RGB", (max_px, max_px))  # JPEG: decode at reduced size
        image = to_display_mode(image)
        image.thumbnail((max_px, max_px))
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        return None, f"cannot decode image: {exc}"
    return image, ""


def to_display_mode(image):
    """8-bit RGB/L for rendering; 16-bit and float microscopy images are contrast-stretched."""
    if image.mode in ("RGB", "L"):
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        import numpy as np
        from PIL import Image

        array = np.asarray(image, dtype=np.float32)
        lo, hi = np.percentile(array, (0.5, 99.5)) if array.size else (0.0, 1.0)
        scaled = np.clip((array - lo) / max(hi - lo, 1e-6) * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(scaled, mode="L")
    return image.convert("RGB")


def decision_summary(row: dict[str, Any]) -> str:
    """One line for a decision in the detail pane."""
    try:
        changes = json.loads(row.get("changes_json") or "{}")
    except json.JSONDecodeError:
        changes = {}
    fields = [k for k in changes if not k.startswith("_")]
    at = row["at"].strftime("%Y-%m-%d %H:%M") if row.get("at") else ""
    what = f" ({', '.join(fields)})" if row.get("action") == "edit" and fields else ""
    note = f" — {row['note']}" if row.get("note") else ""
    return f"{at} {row.get('user', '')}: {row.get('action', '')}{what}{note}"
