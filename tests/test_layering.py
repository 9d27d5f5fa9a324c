"""Dependencies point one way (the import-linter contracts in pyproject.toml: cli, ui ->
services -> pipeline -> ingest -> common -> models -> config -> store -> errors, vocabulary),
and nothing below the TUI imports Textual. Checked on the source."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Packages that must never import the TUI layer (Textual or microvqa_tui.ui).
CORE = [
    REPO / "store",
    REPO / "microvqa_tui" / "services",
    REPO / "microvqa_tui" / "common",
    REPO / "microvqa_tui" / "config",
    REPO / "microvqa_tui" / "pipeline",
    REPO / "microvqa_tui" / "models",
    REPO / "microvqa_tui" / "ingest",
]
FORBIDDEN = ("textual", "textual_image", "microvqa_tui.ui")
STORE_MAY_IMPORT = ("microvqa_tui.errors", "microvqa_tui.vocabulary")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_core_never_imports_the_tui():
    offenders = []
    for package in CORE:
        for path in package.rglob("*.py"):
            for name in imported_modules(path):
                if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                    offenders.append(f"{path.relative_to(REPO)} imports {name}")
    assert offenders == []


def test_store_imports_only_errors_and_the_vocabulary():
    offenders = []
    for path in (REPO / "store").rglob("*.py"):
        for name in imported_modules(path):
            if name.startswith("microvqa_tui") and name not in STORE_MAY_IMPORT:
                offenders.append(f"{path.relative_to(REPO)} imports {name}")
    assert offenders == []


def test_cli_start_up_imports_no_heavy_library():
    code = (
        "import sys, microvqa_tui.cli as c; c._register_subcommands();"
        "heavy = [m for m in ('torch', 'transformers', 'open_clip', 'llama_cpp', 'textual',"
        " 'torch_geometric', 'lancedb') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run(
        [str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout[-3000:]


# The size limits from ARCHITECTURE.md: a function reads in one screen, a module in one sitting.
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 500


def _sources() -> list[Path]:
    return sorted(p for root in ("microvqa_tui", "store") for p in (REPO / root).rglob("*.py"))


def test_functions_and_modules_stay_small():
    too_long: list[str] = []
    for path in _sources():
        source = path.read_text(encoding="utf-8")
        rel = path.relative_to(REPO)
        if len(source.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{rel}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source, filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long.append(f"{rel}::{node.name}: {lines} lines")
    assert not too_long, "over the size limits:\n" + "\n".join(too_long)
