"""The detail pane: the figure (drawn in the terminal), caption, QA, MCQ with options and CoT,
signals, graph score and neighbours, hold-out reason and the item's review history."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Container, Vertical, VerticalScroll
from textual.content import Content
from textual.markup import escape
from textual.widgets import Static

from microvqa_tui.services.detail import Detail, decision_summary
from microvqa_tui.vocabulary import (
    REVIEW_ACCEPTED,
    REVIEW_OF_ACTION,
    REVIEW_REJECTED,
    STATUS_FLAGGED,
    STATUS_HELD_OUT,
    STATUS_KEPT,
    bloom_label,
)

LETTERS = "ABCDEFGHIJKLMNOP"


def _image_widget_class():
    """textual-image's best renderer for this terminal (sixel, kitty, half-cells, unicode).

    Imported here, at module load, because it queries the terminal, which is only possible
    before Textual takes over the screen (run_app imports the UI before starting the app)."""
    from textual_image.widget import Image

    return Image


TerminalImage = _image_widget_class()


class FigureImage(Vertical):
    """An image (PIL) in a box of fixed height (CSS `.figure-box`), scaled to fit it with its
    aspect ratio kept, and a one-line note under it."""

    def compose(self) -> ComposeResult:
        with Container(classes="figure-box"):
            yield TerminalImage(None, classes="figure-image")
        yield Static("", classes="figure-note")

    def show(self, image: Any | None, note: str = "") -> None:
        self.query_one(TerminalImage).image = image
        self.query_one(".figure-box").display = image is not None
        self.query_one(".figure-note", Static).update(note)


def fmt_float(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def section(title: str, body: str) -> str:
    return f"[b $accent]{escape(title)}[/]\n{body}"


def options_markup(choices: list[str], correct: int | None) -> str:
    lines = []
    for index, choice in enumerate(choices or []):
        letter = LETTERS[index] if index < len(LETTERS) else str(index)
        if index == correct:
            lines.append(f"[b $success]✓ {letter}. {escape(choice)}[/]")
        else:
            lines.append(f"  {letter}. {escape(choice)}")
    return "\n".join(lines)


def mcq_markup(mcq: dict[str, Any], *, with_meta: bool = True) -> str:
    parts = [
        f"[b]{escape(mcq['question'])}[/]",
        "",
        options_markup(mcq["choices"], mcq["correct_index"]),
    ]
    if mcq.get("cot"):
        parts += ["", "[$text-muted]Chain of thought[/]", escape(mcq["cot"])]
    if with_meta:
        bloom = mcq.get("bloom_level")
        bloom_text = bloom_label(bloom) if bloom else "–"
        parts += [
            "",
            f"[$text-muted]task[/] {escape(mcq.get('task_str') or '–')}  "
            f"[$text-muted]bloom[/] {bloom_text}  "
            f"[$text-muted]tier[/] {escape(mcq.get('difficulty_tier') or '–')}",
            f"[$text-muted]pass rate[/] {fmt_float(mcq.get('pass_rate'))}  "
            f"[$text-muted]image-free[/] {fmt_float(mcq.get('image_free_pass_rate'))}  "
            f"[$text-muted]status[/] {status_markup(mcq.get('status', ''))}  "
            f"[$text-muted]review[/] {review_markup(mcq.get('review', ''))}",
        ]
    return "\n".join(parts)


def status_markup(status: str) -> str:
    style = {STATUS_KEPT: "$success", STATUS_HELD_OUT: "$warning", STATUS_FLAGGED: "$error"}.get(
        status, "$text-muted"
    )
    return f"[{style}]{escape(status or '–')}[/]"


def review_markup(review: str) -> str:
    style = {REVIEW_ACCEPTED: "b $success", REVIEW_REJECTED: "b $error"}.get(review, "$text-muted")
    return f"[{style}]{escape(review or '–')}[/]"


def figure_line(figure: dict[str, Any] | None) -> str:
    if not figure:
        return "[$text-muted]figure not in the store[/]"
    bits = [
        escape(figure.get("original_id") or figure["figure_id"][:12]),
        f"{figure['width']}×{figure['height']} {figure['format']} {figure['mode']}",
    ]
    if figure.get("article_id"):
        bits.append(escape(figure["article_id"]))
    if figure.get("license"):
        bits.append(escape(figure["license"]))
    return " · ".join(bits)


def signals_markup(detail: Detail) -> str:
    if not detail.signals:
        return "[$text-muted]no signals yet (run the signals step)[/]"
    qa_id = detail.qa["qa_id"] if detail.qa else ""
    lines = []
    for signal in detail.signals:
        scope = "" if signal["item_id"] == qa_id else " (pair)"
        if signal.get("available", True) and signal.get("value") is not None:
            value = f"{signal['value']:.3f}"
        else:
            value = "[$warning]n/a[/]"
        model = f" [$text-muted]{escape(signal.get('model') or '')}[/]"
        lines.append(f"{escape(signal['name'] + scope):<28} {value}{model}")
    return "\n".join(lines)


def neighbours_markup(detail: Detail) -> str:
    if not detail.neighbours:
        return "[$text-muted]no graph edges yet (run the graph step)[/]"
    lines = []
    for n in detail.neighbours:
        score = f" score {fmt_float(n.get('score'))}" if n.get("type") == "qa" else ""
        text = n.get("text") or n["id"][:12]
        lines.append(
            f"[$text-muted]{escape(n['relation'])} {fmt_float(n.get('weight'))}[/]{score}  {escape(text[:90])}"
        )
    return "\n".join(lines)


def decision_lines(detail: Detail, limit: int = 8) -> str:
    return "\n".join(escape(decision_summary(r)) for r in detail.decisions[-limit:])


def undone_text(undone: list[Any]) -> str:
    """What an undo reverted (decision records), for the status line or a notification."""
    if len(undone) > 1:
        return f"undone: {len(undone)} decisions"
    return f"undone: {undone[0].item_type} {undone[0].item_id[:12]}"


def qa_label_markup(detail: Detail) -> str:
    """The reviewer's standing label of the QA, on a line of its own ("" when none)."""
    label = detail.qa_label
    if label is None:
        return ""
    review = REVIEW_OF_ACTION[label]
    style = "$success" if review == REVIEW_ACCEPTED else "$error"
    return f"\n[$text-muted]reviewer label[/] [{style}]{review}[/] (the graph step learns from it)"


def detail_markup(detail: Detail) -> str:
    """Everything but the image, as Textual markup."""
    parts = [section("Figure", figure_line(detail.figure))]
    if detail.hold_out_reason:
        parts.append(section("Held out", f"[$warning]{escape(detail.hold_out_reason)}[/]"))
    if detail.captions:
        parts.append(section("Caption", escape(detail.captions[0]["text"])))
    if detail.qa:
        qa = detail.qa
        parts.append(
            section(
                "QA",
                f"[b]{escape(qa['question'])}[/]\n{escape(qa['answer'])}\n"
                f"[$text-muted]task[/] {escape(qa['task_type'])}  "
                f"[$text-muted]graph score[/] [b]{fmt_float(qa.get('score'))}[/]  "
                f"[$text-muted]status[/] {status_markup(qa.get('status', ''))}  "
                f"[$text-muted]origin[/] {escape(qa.get('origin', ''))}" + qa_label_markup(detail),
            )
        )
    if detail.mcq:
        parts.append(section("MCQ", mcq_markup(detail.mcq)))
    if detail.item_type == "figure":
        parts.append(section("Items", f"{detail.mcqs_of_figure} MCQs of this figure"))
    if detail.qa:
        parts.append(section("Signals", signals_markup(detail)))
        parts.append(section("Graph neighbours", neighbours_markup(detail)))
    history = decision_lines(detail)
    if history:
        parts.append(section("Review history", history))
    return "\n\n".join(parts)


class DetailView(VerticalScroll):
    """Shows one `Detail`; `clear()` for the empty state."""

    def compose(self) -> ComposeResult:
        yield FigureImage(classes="detail-figure")
        yield Static("", classes="detail-body")

    def show(self, detail: Detail) -> None:
        self.query_one(FigureImage).show(detail.image, detail.image_note)
        self.query_one(".detail-body", Static).update(Content.from_markup(detail_markup(detail)))
        self.scroll_home(animate=False)

    def clear(self, message: str = "Select a row and press Enter to see its details.") -> None:
        self.query_one(FigureImage).show(None, "")
        self.query_one(".detail-body", Static).update(
            Content.from_markup(f"[$text-muted]{escape(message)}[/]")
        )
