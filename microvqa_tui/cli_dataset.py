"""`microvqa dedup`, `microvqa export`, `microvqa eval`: the dataset end of the pipeline.

Heavy libraries (lancedb, torch, pyarrow) load inside the commands, never at start-up.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from microvqa_tui.cli import JsonFlag, app, console, emit_json, err_console, state
from microvqa_tui.errors import ExportError, PipelineError

dedup_app = typer.Typer(
    help="Find near-duplicate images, captions and questions; review and decide groups.",
    no_args_is_help=False,
)
app.add_typer(dedup_app, name="dedup")


class Kind(StrEnum):
    image = "image"
    caption = "caption"
    question = "question"
    all = "all"


class TextBackend(StrEnum):
    auto = "auto"
    model = "model"
    tfidf = "tfidf"


class Method(StrEnum):
    auto = "auto"
    exact = "exact"
    ann = "ann"


class Action(StrEnum):
    resolve = "resolve"
    dismiss = "dismiss"
    undo = "undo"


class Decision(StrEnum):
    pending = "pending"
    resolved = "resolved"
    dismissed = "dismissed"
    superseded = "superseded"
    all = "all"


class Format(StrEnum):
    parquet = "parquet"
    jsonl = "jsonl"
    llava = "llava"


class ModelRole(StrEnum):
    llm = "llm"
    vlm = "vlm"


@contextmanager
def _progress(enabled: bool):
    """A rich progress bar on stderr (none with --json)."""
    from microvqa_tui.progress import NullProgress

    if not enabled:
        yield NullProgress()
        return
    from microvqa_tui.cli_progress import RichProgress

    bar = RichProgress(err_console, enabled=True)
    with bar.running():
        yield bar


def _open_store():
    return state.open_store()


# ---------------------------------------------------------------------------- dedup
@dedup_app.callback(invoke_without_command=True)
def dedup(
    ctx: typer.Context,
    kind: Annotated[Kind, typer.Option("--kind", help="What to deduplicate.")] = Kind.all,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="Similarity threshold for this run (default: per kind/backend from settings)."
        ),
    ] = None,
    against: Annotated[
        Path | None,
        typer.Option("--against", help="Check this store's items against another store."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only check items created after this run (id) began."),
    ] = None,
    text_backend: Annotated[
        TextBackend, typer.Option(help="Text vectors: auto (MiniLM, else TF-IDF), model, tfidf.")
    ] = TextBackend.auto,
    method: Annotated[
        Method, typer.Option(help="Neighbour search: auto, exact, ann (LanceDB index).")
    ] = Method.auto,
    as_json: JsonFlag = False,
) -> None:
    """Find near-duplicate groups (nothing is deleted); report group counts and sizes."""
    if ctx.invoked_subcommand is not None:
        return
    from microvqa_tui.pipeline.dedup import dedup_settings, run_dedup

    settings = state.settings()
    store = _open_store()
    kinds = ("image", "caption", "question") if kind == Kind.all else (kind.value,)
    cfg = dedup_settings(settings, method=method.value)
    with _progress(not as_json) as progress:
        report = run_dedup(
            store,
            settings,
            kinds=kinds,
            threshold=threshold,
            against=against,
            since_run=since,
            text_backend=text_backend.value,
            config=cfg,
            progress=progress,
        )
    data = report.to_dict()
    if as_json:
        emit_json(data)
        return
    table = Table(
        "kind",
        "items",
        "links",
        "groups",
        "in groups",
        "new",
        "sizes",
        "method",
        title="near-duplicates",
    )
    for name, k in data["kinds"].items():
        sizes = ", ".join(f"{size}×{count}" for size, count in k["size_histogram"].items()) or "-"
        table.add_row(
            name,
            f"{k['items']:,}",
            f"{k['links']:,}",
            f"{k['groups']:,}",
            f"{k['grouped_items']:,}",
            f"{k['new_groups']:,}",
            sizes,
            "; ".join(k["methods"]) or "-",
        )
    console.print(table)
    for note in data["notes"]:
        console.print(f"[yellow]note[/]: {note}")
    console.print(
        f"run {data['run_id']}: review with `microvqa dedup groups`, decide with `microvqa dedup decide`."
    )


@dedup_app.command("groups")
def dedup_groups(
    kind: Annotated[Kind, typer.Option("--kind")] = Kind.all,
    decision: Annotated[Decision, typer.Option("--decision")] = Decision.pending,
    min_similarity: Annotated[float | None, typer.Option("--min-similarity")] = None,
    page: Annotated[int, typer.Option("--page", min=1)] = 1,
    page_size: Annotated[int, typer.Option("--page-size", min=1, max=1000)] = 20,
    as_json: JsonFlag = False,
) -> None:
    """One page of duplicate groups for review."""
    from microvqa_tui.pipeline.dedup import count_groups, list_groups

    store = _open_store()
    k = None if kind == Kind.all else kind.value
    d = None if decision == Decision.all else decision.value
    rows = list_groups(
        store,
        kind=k,
        decision=d,
        min_similarity=min_similarity,
        offset=(page - 1) * page_size,
        limit=page_size,
    )
    total = count_groups(store, kind=k, decision=d)
    if as_json:
        emit_json({"page": page, "page_size": page_size, "total": total, "groups": rows})
        return
    table = Table(
        "group",
        "kind",
        "size",
        "max sim",
        "keeper",
        "why",
        "decision",
        title=f"duplicate groups (page {page}, {total:,} in all)",
    )
    for row in rows:
        table.add_row(
            row["group_id"],
            row["kind"],
            str(row["size"]),
            f"{row['max_similarity']:.3f}",
            row["keeper_id"],
            row["keeper_reason"],
            row["decision"],
        )
    console.print(table)


@dedup_app.command("decide")
def dedup_decide(
    group_ids: Annotated[
        list[str] | None, typer.Argument(help="Group ids (or use --all with filters).")
    ] = None,
    action: Annotated[
        Action, typer.Option("--action", help="resolve: keep the keeper, reject the others.")
    ] = Action.resolve,
    keeper: Annotated[
        str | None, typer.Option("--keeper", help="Keep this member instead (one group).")
    ] = None,
    all_matching: Annotated[
        bool, typer.Option("--all", help="Every group matching --kind/--decision/--min-similarity.")
    ] = False,
    kind: Annotated[Kind, typer.Option("--kind")] = Kind.all,
    decision: Annotated[Decision, typer.Option("--decision")] = Decision.pending,
    min_similarity: Annotated[float | None, typer.Option("--min-similarity")] = None,
    note: Annotated[str, typer.Option("--note")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Bulk decisions on whole groups, recorded in the decisions table."""
    from microvqa_tui.pipeline.dedup import decide_groups, select_group_ids

    settings = state.settings()
    store = _open_store()
    ids = list(group_ids or [])
    if all_matching:
        ids += select_group_ids(
            store,
            kind=None if kind == Kind.all else kind.value,
            decision=None if decision == Decision.all else decision.value,
            min_similarity=min_similarity,
        )
    if not ids:
        raise PipelineError("no group to decide", hint="name group ids, or use --all with filters")
    result = decide_groups(
        store, ids, action.value, user=settings.user, keeper_id=keeper, note=note
    )
    if as_json:
        emit_json(result)
        return
    console.print(", ".join(f"{k}: {v}" for k, v in result.items()))


@dedup_app.command("policy")
def dedup_policy(
    min_similarity: Annotated[
        float,
        typer.Option(
            "--min-similarity", help="Resolve pending groups whose weakest link is at least this."
        ),
    ],
    kind: Annotated[Kind, typer.Option("--kind")] = Kind.all,
    as_json: JsonFlag = False,
) -> None:
    """An explicit policy: resolve (keep keeper, reject others) every strong enough group."""
    from microvqa_tui.pipeline.dedup import apply_policy

    settings = state.settings()
    result = apply_policy(
        _open_store(),
        kind=None if kind == Kind.all else kind.value,
        min_similarity=min_similarity,
        user=settings.user,
    )
    if as_json:
        emit_json(result)
        return
    console.print(", ".join(f"{k}: {v}" for k, v in result.items()))


# ---------------------------------------------------------------------------- export
@app.command("export")
def export(
    out_dir: Annotated[
        Path,
        typer.Argument(
            help="Folder to write: new, empty, or an earlier export (with --overwrite); "
            "never inside the store."
        ),
    ],
    fmt: Annotated[
        Format, typer.Option("--format", help="parquet (MicroVQA++), jsonl + images, llava.")
    ] = Format.parquet,
    split: Annotated[
        str, typer.Option("--split", help="train,validation,test fractions.")
    ] = "0.8,0.1,0.1",
    include_flagged: Annotated[bool, typer.Option("--include-flagged")] = False,
    include_held_out: Annotated[bool, typer.Option("--include-held-out")] = False,
    include_pending: Annotated[
        bool,
        typer.Option(
            "--include-pending", help="Also export MCQs not curated yet (pending, not rejected)."
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace an earlier export in OUT_DIR: deletes only the files it listed.",
        ),
    ] = False,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Export accepted/kept MCQs in leakage-free splits, with a dataset card."""
    from microvqa_tui.pipeline.export import export_dataset
    from microvqa_tui.pipeline.export.core import describe_excluded

    store = _open_store()
    with _progress(not as_json) as progress:
        report = export_dataset(
            store,
            out_dir,
            fmt=fmt.value,
            fractions=split,
            seed=seed,
            include_flagged=include_flagged,
            include_held_out=include_held_out,
            include_pending=include_pending,
            overwrite=overwrite,
            progress=progress,
        )
    data = report.to_dict()
    if as_json:
        emit_json(data)
        return
    table = Table("split", "questions", title=f"export → {data['out_dir']} ({data['format']})")
    for name, count in data["splits"].items():
        table.add_row(name, f"{count:,}")
    console.print(table)
    leak = data["leakage"]
    console.print(
        f"leakage: cross-split groups {leak['cross_split_groups']}, articles {leak['cross_split_articles']}, "
        f"figures {leak['cross_split_figures']}"
    )
    excluded = data["excluded"]
    console.print(
        f"left out {sum(excluded.values()):,} MCQs: {describe_excluded(excluded)}"
        if excluded
        else "left out: none"
    )


# ---------------------------------------------------------------------------- eval
@app.command("eval")
def eval_command(
    source: Annotated[
        Path,
        typer.Argument(help="An export folder, a Parquet/JSONL file or folder, or a store folder."),
    ],
    model: Annotated[
        ModelRole, typer.Option("--model", help="llm (text only) or vlm (sees the images).")
    ] = ModelRole.llm,
    no_image: Annotated[bool, typer.Option("--no-image", help="Only the image-free run.")] = False,
    limit: Annotated[int | None, typer.Option("--limit", min=1)] = None,
    split: Annotated[
        str | None, typer.Option("--split", help="Only this split of an export.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the full results (per item) as JSON here.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Accuracy of a local model overall, by task, Bloom level and family, with an
    image-free run (language-shortcut rate) and the random-guess baseline."""
    from microvqa_tui.pipeline.evaluate import evaluate_source, load_answerer

    settings = state.settings()
    answerer = load_answerer(settings, model.value)
    with _progress(not as_json) as progress:
        result = evaluate_source(
            source,
            answerer,
            no_image=no_image or model == ModelRole.llm,
            limit=limit,
            split=split,
            progress=progress,
        )
    if out is not None:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
        except OSError as exc:
            raise ExportError(f"cannot write {out}: {exc}") from None
    summary = {k: v for k, v in result.items() if k != "items"}
    if out is not None:
        summary["results_file"] = str(out)
    if as_json:
        emit_json(summary)
        return
    _print_eval(summary)


def _print_eval(summary: dict[str, Any]) -> None:
    console.print(
        f"model {summary['model']} on {summary['n']} questions; random-guess baseline {summary['random_baseline']:.3f}"
    )
    table = Table("run", "group", "value", "n", "accuracy", "random", title="accuracy")
    for run, data in summary["runs"].items():
        table.add_row(
            run,
            "overall",
            "",
            str(data["n"]),
            f"{data['accuracy']:.3f}",
            f"{summary['random_baseline']:.3f}",
        )
        for group in ("by_task", "by_bloom", "by_family"):
            for value, row in data[group].items():
                table.add_row(
                    "",
                    group[3:],
                    value,
                    str(row["n"]),
                    f"{row['accuracy']:.3f}",
                    f"{row['random_baseline']:.3f}",
                )
    console.print(table)
    if "language_shortcut_rate" in summary:
        console.print(
            f"language-shortcut rate (correct without the image): {summary['language_shortcut_rate']:.3f} "
            f"({summary['shortcut_above_chance']:+.3f} vs chance)"
        )
    if "results_file" in summary:
        console.print(f"results: {summary['results_file']}")
