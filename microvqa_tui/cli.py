"""The `microvqa` command. Thin: parses, builds settings, calls the pipeline, prints.

Every reporting command takes `--json` and then prints exactly one JSON object on stdout.
Errors are one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from microvqa_tui.config import Settings, load_settings, settings_as_dict
from microvqa_tui.errors import STORE_HINT, MicroVQAError, one_line, raised_by_store_library

app = typer.Typer(
    name="microvqa",
    help="Curate microscopy multiple-choice VQA datasets from figure–caption pairs, offline.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Show the settings in force.", no_args_is_help=True)
app.add_typer(config_app, name="config")

console = Console()
err_console = Console(stderr=True)


class State:
    """Global options, resolved once per invocation."""

    config_file: Path | None = None
    store: Path | None = None
    create: bool = False

    def settings(self) -> Settings:
        return load_settings(self.config_file, store=self.store)

    def open_store(self, settings: Settings | None = None, *, create: bool = False):
        """The store of the settings. Only commands that bring items in (`create`: ingest,
        spatial) or an explicit `--create` make a new one; the others refuse a folder that
        is not a store instead of filling it with empty tables."""
        from store import open_store

        path = (settings or self.settings()).store
        return open_store(path, create=create or self.create)


state = State()

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one machine-readable JSON object.")]


def emit_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


@app.callback(invoke_without_command=True)
def main_callback(
    ctx: typer.Context,
    store: Annotated[
        Path | None,
        typer.Option(
            "--store", envvar="MICROVQA_STORE", help="Store folder (default: per-user data folder)."
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", envvar="MICROVQA_CONFIG", help="TOML settings file."),
    ] = None,
    create: Annotated[
        bool,
        typer.Option(
            "--create", help="Create the store if --store is not one yet (ingest always may)."
        ),
    ] = False,
) -> None:
    """Without a command, opens the TUI on the store."""
    state.store = store
    state.config_file = config
    state.create = create
    if ctx.invoked_subcommand is None:
        ctx.invoke(tui)


SCREENS = ("pipeline", "browse", "review", "duplicates", "stats", "export")


@app.command()
def tui(
    screen: Annotated[
        str | None,
        typer.Option(help=f"The screen to open on: {', '.join(SCREENS)} (default: pipeline)."),
    ] = None,
) -> None:
    """Open the Textual workbench on the store."""
    if screen is not None and screen not in SCREENS:
        raise MicroVQAError(f"unknown screen {screen!r}; screens: {', '.join(SCREENS)}")
    settings = state.settings()
    from microvqa_tui.ui.app import run_app  # Textual loads only when the TUI is asked for

    run_app(settings, screen=screen)


@config_app.command("show")
def config_show(as_json: JsonFlag = False) -> None:
    """Print the merged settings (defaults < TOML file < MICROVQA_* env < flags)."""
    data = settings_as_dict(state.settings())
    if as_json:
        emit_json(data)
        return
    table = Table("setting", "value", title="microvqa settings")
    for key, value in _flatten(data):
        table.add_row(key, str(value))
    console.print(table)


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            items.extend(_flatten(value, name + "."))
        else:
            items.append((name, value))
    return items


def _register_subcommands() -> None:
    """Command groups live beside the code they drive; each module adds itself to `app`."""
    import importlib

    for module in (
        "cli_store",
        "cli_run",
        "cli_ingest",
        "cli_models",
        "cli_dataset",
        "cli_spatial",
        "cli_review",
    ):
        importlib.import_module(f"microvqa_tui.{module}")


def stop_on_sigterm() -> None:
    """Treat SIGTERM (`kill`, a job scheduler's time limit) like Ctrl-C: the step in flight
    unwinds, so its run record says `cancelled` and completed batches stay saved, instead
    of the process vanishing with a run left `running`."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def main() -> None:
    _register_subcommands()
    stop_on_sigterm()
    try:
        app()
    except MicroVQAError as exc:
        err_console.print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: completed batches are saved; re-run to resume.")
        raise SystemExit(130) from None
    except Exception as exc:
        if not raised_by_store_library(exc):
            raise  # a bug: the traceback is what its report needs
        message = f"the store could not be read or written: {one_line(exc)} ({STORE_HINT})"
        err_console.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
        raise SystemExit(1) from None
