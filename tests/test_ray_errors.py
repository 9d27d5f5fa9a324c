"""An exception in a Ray actor reaches the user as one line naming the item it failed on
(or saying the actor could not load its models), and the run is recorded as failed."""

from __future__ import annotations

import pytest

from microvqa_tui.engines import EngineSettings
from microvqa_tui.engines.base import item_label
from microvqa_tui.errors import PipelineError
from microvqa_tui.pipeline.batchstep import run_batch_step
from tests.engine_fakes import FailingStep, Item
from tests.stage_helpers import REPO


def test_item_labels_name_the_first_id_field():
    assert item_label(Item(2, {"text": "x", "caption_id": "cap-c"})) == "caption_id cap-c"
    assert item_label(({"mcq_id": "m1", "qa_id": "q1"}, "caption")) == "mcq_id m1"
    assert item_label({"figure_id": ""}) == "{'figure_id': ''}"  # an empty id names nothing
    assert item_label(7) == "7"


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 2 CPUs whose workers import this checkout (the fake step lives here)."""
    ray = pytest.importorskip("ray")  # the optional extra
    runtime = {"env_vars": {"PYTHONPATH": str(REPO)}}
    ray.init(num_cpus=2, include_dashboard=False, runtime_env=runtime, log_to_driver=False)
    yield
    ray.shutdown()


def _run(tmp_path, step):
    from microvqa_tui.config import load_settings
    from microvqa_tui.engines.ray_data import RayEngine
    from store import open_store

    store = open_store(tmp_path / "store")
    engine = RayEngine(EngineSettings(kind="ray", actors=2))
    with pytest.raises(PipelineError) as failed:
        run_batch_step(step, store, load_settings(store=tmp_path / "store"), engine=engine)
    (run,) = store.rows("runs", columns=["status", "message"])
    assert run["status"] == "failed" and str(failed.value) in run["message"]
    return str(failed.value)


def test_an_item_failing_on_an_actor_is_named_in_one_line(tmp_path, local_ray):
    line = _run(tmp_path, FailingStep(bad="cap-e"))
    assert line == (
        "failing failed on a Ray actor — caption_id cap-e: ValueError: cannot read 'text of e'"
    )


def test_an_actor_that_cannot_load_its_models_says_so_in_one_line(tmp_path, local_ray):
    line = _run(tmp_path, FailingStep(missing=True))
    assert line == (
        "failing failed on a Ray actor — loading its models: "
        "ModelMissingError: model 'fake-encoder' is not installed"
    )
