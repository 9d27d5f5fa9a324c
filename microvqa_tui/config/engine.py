"""Settings of the engines (`microvqa_tui.engines`), mounted into `Settings` as `engine`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class EngineSettings(BaseModel):
    """Where a step's batches are processed: in this process, or on Ray actors."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["local", "ray"] = Field(
        "local", description="local = in this process; ray = Ray Data actors (pip extra `ray`)."
    )
    ray_address: str = Field(
        "",
        description="Ray cluster address (e.g. ray://head:10001 or auto); empty = start a "
        "local Ray with this machine's cores.",
    )
    local_cpus: int = Field(
        0, ge=0, description="CPUs of a local Ray started without an address; 0 = all cores."
    )
    actors: int = Field(
        0,
        ge=0,
        description="Actors (each loads the step's models once); 0 = one per GPU when the "
        "cluster has GPUs, else one per CPU.",
    )
    cpus_per_actor: float = Field(1.0, gt=0, description="CPUs reserved per actor.")
    gpus_per_actor: float = Field(
        1.0, ge=0, description="GPUs per actor when the cluster has GPUs (fractions share one)."
    )
    batch_size: int = Field(
        0, ge=0, description="Items per batch sent to an actor; 0 = the step's batch size."
    )
    shared_store: bool = Field(
        False,
        description="The store is on a filesystem every Ray node mounts at the same path "
        "(e.g. NFS): actors read image bytes from it themselves instead of the driver "
        "shipping them.",
    )
    window: int = Field(
        20_000,
        ge=1,
        description="Items the driver reads and ships per Ray dataset (bounds driver memory); "
        "actors are started once per window.",
    )
