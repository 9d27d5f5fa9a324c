"""What can be browsed and how it is filtered: the views (tables with their shown columns
and filters), the filter bar's state and its translation into a LanceDB filter (SQL).

No Textual and no LanceDB here (importing LanceDB takes seconds: the TUI builds its filter
bar before the store is open), so the SQL quoting of `store.queries` is imported when first
used.
"""

from __future__ import annotations

from dataclasses import dataclass


def quote(value: str) -> str:
    """`store.queries.quote`, imported when first used (see the module docstring)."""
    from store.queries import quote as store_quote

    return store_quote(value)


def in_list(column: str, values: list[str]) -> str:
    from store.queries import in_list as store_in_list

    return store_in_list(column, values)


@dataclass(frozen=True)
class Column:
    name: str
    label: str
    width: int | None = None
    kind: str = "text"  # text | id | int | float | list | bloom


@dataclass(frozen=True)
class View:
    """A browsable table: which columns to show and which filters apply."""

    table: str
    key: str
    title: str
    columns: tuple[Column, ...]
    search_columns: tuple[str, ...] = ()
    status: bool = False
    review: bool = False
    task_column: str | None = None
    bloom: bool = False
    tier: bool = False
    range_columns: tuple[str, ...] = ()

    @property
    def column_names(self) -> list[str]:
        names = [c.name for c in self.columns]
        return names if self.key in names else [self.key, *names]


VIEWS: dict[str, View] = {
    "mcqs": View(
        "mcqs",
        "mcq_id",
        "MCQs",
        (
            Column("mcq_id", "id", 10, "id"),
            Column("question", "question", 48),
            Column("task_str", "task", 14),
            Column("bloom_level", "bloom", 12, "bloom"),
            Column("difficulty_tier", "tier", 7),
            Column("pass_rate", "pass", 5, "float"),
            Column("status", "status", 8),
            Column("review", "review", 10),
        ),
        search_columns=("question", "mcq_id", "figure_id"),
        status=True,
        review=True,
        task_column="task_str",
        bloom=True,
        tier=True,
        range_columns=("pass_rate", "image_free_pass_rate", "bloom_confidence"),
    ),
    "qas": View(
        "qas",
        "qa_id",
        "QAs",
        (
            Column("qa_id", "id", 10, "id"),
            Column("question", "question", 52),
            Column("task_type", "task", 14),
            Column("score", "score", 5, "float"),
            Column("status", "status", 8),
            Column("origin", "origin", 8),
            Column("reason", "reason", 24),
        ),
        search_columns=("question", "answer", "qa_id", "figure_id"),
        status=True,
        task_column="task_type",
        range_columns=("score",),
    ),
    "figures": View(
        "figures",
        "figure_id",
        "Figures",
        (
            Column("figure_id", "id", 10, "id"),
            Column("original_id", "source id", 16),
            Column("format", "format", 6),
            Column("width", "w", 5, "int"),
            Column("height", "h", 5, "int"),
            Column("source_kind", "kind", 9),
            Column("article_id", "article", 16),
            Column("license", "license", 14),
        ),
        search_columns=("original_id", "article_id", "figure_id", "image_path"),
    ),
}


@dataclass(frozen=True)
class Filter:
    """What the filter bar asks for; `None`/empty means "any"."""

    status: str | None = None
    review: str | None = None
    task: str | None = None
    bloom: int | None = None
    tier: str | None = None
    range_column: str | None = None
    range_min: float | None = None
    range_max: float | None = None
    text: str = ""

    def is_empty(self) -> bool:
        return self == Filter(range_column=self.range_column)

    def describe(self) -> str:
        parts = []
        for name in ("status", "review", "task", "tier"):
            value = getattr(self, name)
            if value:
                parts.append(f"{name}={value}")
        if self.bloom is not None:
            parts.append(f"bloom={self.bloom}")
        if self.range_column and (self.range_min is not None or self.range_max is not None):
            lo = "" if self.range_min is None else f"{self.range_min:g}≤"
            hi = "" if self.range_max is None else f"≤{self.range_max:g}"
            parts.append(f"{lo}{self.range_column}{hi}")
        if self.text:
            parts.append(f'text~"{self.text}"')
        return ", ".join(parts) or "everything"


@dataclass(frozen=True)
class Sort:
    column: str
    descending: bool = False


def build_where(view: View, flt: Filter) -> str | None:
    """The LanceDB filter (SQL) for a view and filter; values are quoted with `quote`."""
    clauses: list[str] = []
    if view.status and flt.status:
        clauses.append(f"status = {quote(flt.status)}")
    if view.review and flt.review:
        clauses.append(f"review = {quote(flt.review)}")
    if view.task_column and flt.task:
        clauses.append(f"{view.task_column} = {quote(flt.task)}")
    if view.bloom and flt.bloom is not None:
        clauses.append(f"bloom_level = {int(flt.bloom)}")
    if view.tier and flt.tier:
        clauses.append(f"difficulty_tier = {quote(flt.tier)}")
    if flt.range_column and flt.range_column in view.range_columns:
        if flt.range_min is not None:
            clauses.append(f"{flt.range_column} >= {float(flt.range_min)!r}")
        if flt.range_max is not None:
            clauses.append(f"{flt.range_column} <= {float(flt.range_max)!r}")
    text = flt.text.strip().lower()
    if text and view.search_columns:
        needle = quote(text)
        alternatives = [f"strpos(lower({c}), {needle}) > 0" for c in view.search_columns]
        clauses.append("(" + " OR ".join(alternatives) + ")")
    return " AND ".join(clauses) or None


def and_where(*clauses: str | None) -> str | None:
    parts = [f"({c})" for c in clauses if c]
    return " AND ".join(parts) or None
