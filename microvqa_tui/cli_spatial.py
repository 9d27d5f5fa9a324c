"""`microvqa generate spatial`: spatial-reasoning MCQs by construction (MiSI-Bench style)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from microvqa_tui.cli import JsonFlag, app, console, emit_json, state

generate_app = typer.Typer(
    help="Generate MCQs whose answers are exact by construction.", no_args_is_help=True
)
app.add_typer(generate_app, name="generate")

_FAMILY_HELP = (
    "Comma-separated families: rotation, translation, zoom, composition (micrographs from "
    "the store's figures); mol_rotation, mol_translation, mol_zoom, contacts, "
    "interaction_site, hbond (structures); or the groups micrograph, molecular, interaction; "
    "'all' (default)."
)


@generate_app.command("spatial")
def spatial(
    families: Annotated[str, typer.Option("--families", help=_FAMILY_HELP)] = "all",
    count: Annotated[int, typer.Option("--count", min=0, help="Items per family.")] = 10,
    angle_step: Annotated[
        int, typer.Option("--angle-step", min=1, max=60, help="Degrees between rotation angles.")
    ] = 15,
    closeness: Annotated[
        str,
        typer.Option(
            "--distractor-closeness",
            help="How close distractors sit to the key: near | medium | far.",
        ),
    ] = "medium",
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same items (same ids).")] = 0,
    structures: Annotated[
        Path | None,
        typer.Option(
            "--structures",
            help="Folder of PDBbind-style complexes (<id>_protein.pdb + <id>_ligand.sdf|mol2) "
            "and/or .sdf/.mol2 molecules (default: the bundled examples in assets/spatial).",
        ),
    ] = None,
    choices: Annotated[int, typer.Option("--choices", min=2, max=6, help="Options per item.")] = 4,
    layout: Annotated[
        str,
        typer.Option(
            "--layout",
            help="Micrograph pairs as one two-panel figure (panels) or two images (pair).",
        ),
    ] = "panels",
    as_json: JsonFlag = False,
) -> None:
    """Generate spatial-reasoning MCQs into the store and report counts per family."""
    from microvqa_tui.cli_progress import RichProgress
    from microvqa_tui.pipeline.spatial import SpatialConfig, generate_spatial, parse_families
    from microvqa_tui.progress import CancelToken

    settings = state.settings()
    cfg = SpatialConfig(
        families=parse_families(families),
        count=count,
        seed=seed,
        angle_step=angle_step,
        closeness=closeness.strip().lower(),  # type: ignore[arg-type]
        n_choices=choices,
        layout=layout.strip().lower(),  # type: ignore[arg-type]
    ).validate()
    store = state.open_store(settings, create=True)
    progress = RichProgress(console, enabled=not as_json)
    cancel = CancelToken()
    with progress.running():
        try:
            report = generate_spatial(
                store, cfg, structures=structures, progress=progress, cancel=cancel
            )
        except KeyboardInterrupt:
            cancel.cancel()
            raise
    summary = report.to_dict()
    if as_json:
        emit_json(summary)
        return
    _print_summary(summary, report.run_id)


def _print_summary(summary: dict[str, Any], run_id: str) -> None:
    table = Table(
        "family",
        "generated",
        "new",
        "skipped",
        "items/s",
        title=f"spatial items (run {run_id})",
    )
    for family, counts in summary["families"].items():
        table.add_row(
            f"spatial:{family}",
            str(counts["generated"]),
            str(counts["mcqs_new"]),
            str(counts["skipped"]),
            f"{counts['items_per_s']:.1f}",
        )
    console.print(table)
    for note in summary["notes"]:
        console.print(f"[yellow]note[/]: {note}")
