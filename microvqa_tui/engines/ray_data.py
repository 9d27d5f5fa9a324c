"""The Ray engine: a step's batches go through Ray Data `map_batches` on an actor pool.

Each actor unpickles the step and calls `load(settings)` once (its models), then runs
`process` on one batch per call. The driver reads the items (it ships their inputs, image
bytes included, in the dataset rows) and iterates over finished batches, so the runner
writes each through the step's idempotent `write` as it arrives: a killed driver or a lost
actor loses only the batches in flight, and a re-run resumes from the step's `pending`.

The driver ships items in windows of `engine.window` items (one dataset each) so its memory
stays bounded; actors start once per window. Where the store is on a filesystem every node
mounts at the same path and `engine.shared_store` says so, a step may ship ids instead of
bulky inputs and let its actors read them (embed: image bytes).

An exception in an actor (loading its models, or processing a batch) does not go through
Ray's error machinery (its retries, its multi-line traces on the terminal): the actor
returns it as one line naming the item it failed on, and the driver stops the run with
that line (`PipelineError`), as a local run would fail.

Without `engine.ray_address` a local Ray is started with this machine's cores (and shut
down after the run); with one, the cluster is joined and left running. Ray is imported
here only, so it stays an optional extra.
"""

from __future__ import annotations

import logging
import os
import pickle
import warnings
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from microvqa_tui.config.engine import EngineSettings
from microvqa_tui.engines.base import Done, Worker, item_label
from microvqa_tui.errors import PipelineError, one_line
from microvqa_tui.progress import CancelToken

if TYPE_CHECKING:  # annotations only
    from microvqa_tui.config import Settings


class RayEngine:
    name = "ray"

    def __init__(self, cfg: EngineSettings) -> None:
        self.cfg = cfg
        self.batch_size = cfg.batch_size

    def run(
        self,
        step: Worker,
        settings: Settings,
        batches: Iterable[list[Any]],
        cancel: CancelToken,
    ) -> Iterator[Done]:
        import ray

        started = connect(self.cfg)
        try:
            pool = actor_pool(self.cfg, ray.cluster_resources())
            for window in _windows(batches, self.cfg.window):
                yield from _run_window(step, settings, window, pool, cancel)
                if cancel.cancelled:
                    return
        finally:
            if started:
                ray.shutdown()


def connect(cfg: EngineSettings) -> bool:
    """Join `cfg.ray_address`, or start a quiet local Ray; True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    quiet: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    with warnings.catch_warnings():  # Ray fork-execs its processes: nothing of lancedb runs
        warnings.filterwarnings("ignore", "lancedb fork support", RuntimeWarning)
        if cfg.ray_address:
            ray.init(address=cfg.ray_address, **quiet)
        else:
            cpus = cfg.local_cpus or os.cpu_count() or 1
            ray.init(num_cpus=cpus, include_dashboard=False, **quiet)
    _quiet_ray_data()
    return True


def _quiet_ray_data() -> None:
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.WARNING)


def actor_pool(cfg: EngineSettings, resources: dict[str, float]) -> dict[str, Any]:
    """Actors and resources per actor: GPU actors when the cluster has GPUs, else CPU actors."""
    gpus, cpus = resources.get("GPU", 0.0), resources.get("CPU", 1.0)
    if gpus and cfg.gpus_per_actor > 0:
        size = cfg.actors or max(1, int(gpus / cfg.gpus_per_actor))
        return {"size": size, "num_cpus": cfg.cpus_per_actor, "num_gpus": cfg.gpus_per_actor}
    size = cfg.actors or max(1, int(cpus / cfg.cpus_per_actor))
    return {"size": size, "num_cpus": cfg.cpus_per_actor, "num_gpus": 0}


def _windows(batches: Iterable[list[Any]], items: int) -> Iterator[list[list[Any]]]:
    """Consecutive groups of batches holding about `items` items."""
    it = iter(batches)
    while True:
        window, count = [], 0
        for batch in it:
            window.append(batch)
            count += len(batch)
            if count >= items:
                break
        if not window:
            return
        yield window


class StepActor:
    """One actor of the pool: the step with its models loaded once. A failure comes back
    as a row's `error` (one line), not as an exception: see the module's docstring."""

    def __init__(self, step: Worker, settings: Settings) -> None:
        self.step, self.failed = step, ""
        try:
            step.load(settings)
        except Exception as exc:  # every batch of this actor reports it
            self.failed = f"loading its models: {_what(exc)}"

    def __call__(self, batch: Any) -> dict[str, np.ndarray]:
        blobs = batch.column("batch").to_pylist()
        payloads, sizes, errors = [], [], []
        for blob in blobs:  # one row = one of the runner's batches
            items = pickle.loads(blob)
            payload, error = b"", self.failed
            if not error:
                try:
                    payload = pickle.dumps(self.step.process(items))
                except Exception as exc:
                    error = self._failure(items, exc)
            payloads.append(payload)
            errors.append(error)
            sizes.append(len(items))
        return {
            "payload": np.array(payloads, dtype=object),
            "n": np.array(sizes),
            "error": np.array(errors, dtype=object),
        }

    def _failure(self, items: list[Any], exc: Exception) -> str:
        """The line naming the item `process` failed on: a batch of several is tried one
        item at a time to find it (only after a failure)."""
        for item in items if len(items) > 1 else ():
            try:
                self.step.process([item])
            except Exception as alone:
                return f"{item_label(item)}: {_what(alone)}"
        names = ", ".join(item_label(item) for item in items[:3])
        more = f" and {len(items) - 3} more" if len(items) > 3 else ""
        return f"{names}{more}: {_what(exc)}"


def _what(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {one_line(exc)}"


def _run_window(
    step: Worker,
    settings: Settings,
    window: list[list[Any]],
    pool: dict[str, Any],
    cancel: CancelToken,
) -> Iterator[Done]:
    import ray.data

    rows = [{"batch": pickle.dumps(items)} for items in window]
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        StepActor,
        fn_constructor_args=(step, settings),
        batch_size=1,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=min(pool["size"], len(rows))),
        num_cpus=pool["num_cpus"],
        num_gpus=pool["num_gpus"] or None,
    )
    name = getattr(step, "name", type(step).__name__)
    for row in dataset.iter_rows():
        if row["error"]:
            raise PipelineError(f"{name} failed on a Ray actor — {row['error']}")
        yield Done(pickle.loads(row["payload"]), int(row["n"]))
        if cancel.cancelled:  # stop feeding; batches still in flight are dropped
            return
