"""The package works when installed as a wheel, not only from a source checkout: its assets
(prompt templates, the sample, the example structures) travel inside it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    return out


def _build_wheel(tmp_path: Path, env: dict[str, str]) -> Path:
    """Build from a copy of the sources, so the checkout gets no build/ or egg-info."""
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("microvqa_tui", "store"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    pip = [sys.executable, "-m", "pip"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", "dist", "."], src, env)
    return next((src / "dist").glob("microvqa_tui-*.whl"))


def _scratch_venv(tmp_path: Path, wheel: Path, env: dict[str, str]) -> Path:
    """A fresh venv that sees the shared venv's libraries (torch, lancedb, ...) but not its
    editable install of this project, with the wheel installed into it."""
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    python = venv / "bin" / "python"
    site = Path(
        _run(
            [str(python), "-c", "import site; print(site.getsitepackages()[0])"], tmp_path, env
        ).stdout.strip()
    )
    # A plain path line: the shared site-packages' own .pth files (the editable install's
    # finder) are not processed, so `microvqa_tui` can only come from the wheel.
    (site / "shared-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    _run([*pip, "install", "--no-deps", "--no-index", str(wheel)], tmp_path, env)
    return venv


@pytest.mark.slow
def test_the_wheel_carries_its_assets_and_runs_doctor_and_an_ingest(tmp_path):
    env = {
        k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("MICROVQA_")
    }
    env["HOME"] = str(tmp_path)  # no developer config file
    wheel = _build_wheel(tmp_path, env)
    names = zipfile.ZipFile(wheel).namelist()
    assert "microvqa_tui/assets/prompts/stage1_qa.md" in names
    assert "microvqa_tui/assets/sample/manifest.jsonl" in names

    venv = _scratch_venv(tmp_path, wheel, env)
    python, microvqa = venv / "bin" / "python", venv / "bin" / "microvqa"
    where = _run(
        [str(python), "-c", "import microvqa_tui.assets as a; print(a.SAMPLE_MANIFEST)"],
        tmp_path,
        env,
    ).stdout.strip()
    sample = Path(where)
    assert sample.is_file() and str(venv) in where  # the installed copy, not the checkout

    doctor = json.loads(_run([str(microvqa), "doctor", "--json"], tmp_path, env).stdout)
    assets = next(c for c in doctor["checks"] if c["name"] == "assets")
    assert assets["ok"], assets

    store = tmp_path / "store"
    ingest = _run(
        [str(microvqa), "--store", str(store), "ingest", str(sample), "--json"], tmp_path, env
    )
    report = json.loads(ingest.stdout[ingest.stdout.index("{") :])
    assert report["figures_new"] == 32, report
