"""Small real inputs for the ingest tests: images, sidecar folders, manifests, Parquet files
in the MicroVQA / MicroVQA++ layouts and WebDataset shards, all generated into tmp_path."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from microvqa_tui.config import IngestSettings
from microvqa_tui.progress import CancelToken, RecordingProgress

TABLES = ("figures", "captions", "mcqs", "quarantine")
IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def settings(**overrides: Any) -> IngestSettings:
    """Small batches so a handful of records spans several batches."""
    values: dict[str, Any] = {"batch_size": 4, "workers": 2}
    values.update(overrides)
    return IngestSettings(**values)


def image_bytes(seed: int, fmt: str = "PNG", size: tuple[int, int] = (32, 24)) -> bytes:
    """A small noise image, unique per seed (so unique figure ids)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def caption(seed: int) -> str:
    return f"Fluorescence micrograph {seed} of HeLa cells stained for tubulin (green)."


# ---------------------------------------------------------------------- folder
def write_folder(root: Path, n: int, start: int = 0) -> Path:
    """n good pairs: alternating png+txt and jpg+json (with metadata), half in a subfolder."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        folder = root / "sub" if i % 2 else root
        folder.mkdir(exist_ok=True)
        if i % 2:
            (folder / f"fig{i}.jpg").write_bytes(image_bytes(i, "JPEG"))
            (folder / f"fig{i}.json").write_text(
                json.dumps(
                    {
                        "caption": caption(i),
                        "id": f"F{i}",
                        "article_id": f"PMC{i}",
                        "license": "CC-BY-4.0",
                        "stain": "DAPI",
                    }
                )
            )
        else:
            (folder / f"fig{i}.png").write_bytes(image_bytes(i))
            (folder / f"fig{i}.txt").write_text(caption(i))
    return root


# ---------------------------------------------------------------------- manifests
def manifest_row(i: int, image: str) -> dict[str, Any]:
    """A row with the sample manifest's keys."""
    return {
        "id": f"M{i}",
        "image": image,
        "caption": caption(i),
        "article_id": f"PMC{i // 2}",
        "license": "CC0-1.0",
        "source": "synthetic",
        "attribution": "tests",
        "modality": "fluorescence",
        "panels": 1,
        "consistent": True,
        "inconsistency": "",
    }


def write_manifest(root: Path, n: int, start: int = 0) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(start, start + n):
        (root / "images" / f"m{i}.png").write_bytes(image_bytes(1000 + i))
        lines.append(json.dumps(manifest_row(i, f"images/m{i}.png")))
    path = root / "manifest.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_csv_manifest(root: Path, n: int) -> Path:
    (root / "img").mkdir(parents=True, exist_ok=True)
    lines = ["image,caption,id,license,stain"]
    for i in range(n):
        (root / "img" / f"c{i}.png").write_bytes(image_bytes(2000 + i))
        lines.append(f'img/c{i}.png,"{caption(i)}, with a comma",C{i},CC-BY,hoechst')
    path = root / "pairs.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------------- parquet
def image_struct(seed: int, name: str | None = None) -> dict[str, Any]:
    return {"bytes": image_bytes(seed, "JPEG"), "path": name or f"img{seed}.jpg"}


def write_parquet(path: Path, columns: dict[str, list[Any]], types: dict[str, pa.DataType]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([(name, types[name]) for name in columns])
    pq.write_table(pa.table(columns, schema=schema), path, row_group_size=3)
    return path


def write_caption_parquet(path: Path, n: int, start: int = 0) -> Path:
    """A plain figure–caption Parquet file (no question columns)."""
    seeds = range(3000 + start, 3000 + start + n)
    return write_parquet(
        path,
        {
            "image": [image_struct(s) for s in seeds],
            "caption": [caption(s) for s in seeds],
            "pmcid": [f"PMC{s}" for s in seeds],
            "license": ["CC-BY" for _ in seeds],
            "figure_type": ["micrograph" for _ in seeds],
        },
        {
            "image": IMAGE_STRUCT,
            "caption": pa.string(),
            "pmcid": pa.string(),
            "license": pa.string(),
            "figure_type": pa.string(),
        },
    )


CHOICES = ["alpha stain", "beta stain", "gamma stain", "delta stain"]
MICROVQA_PP_TYPES = {  # the MicroVQA++ layout's columns
    "image_name": pa.string(),
    "image": IMAGE_STRUCT,
    "question": pa.string(),
    "choices": pa.list_(pa.string()),
    "correct_index": pa.int64(),
    "correct_answer": pa.string(),
    "cot": pa.string(),
    "task_str": pa.string(),
    "image_caption": pa.string(),
    "images_source": pa.string(),
}


def write_microvqa_pp(
    path: Path,
    n: int,
    *,
    one_based: bool = False,
    prefix: str | None = None,  # "num" -> "1) x", "letter" -> "A. x"
    answer: str = "text",  # text | labelled | label | none
    seed: int = 4000,
) -> Path:
    """MicroVQA++ layout. The correct choice of row i is CHOICES[(i % 3) + 1] (never index 0,
    so only the answer column can tell 0- from 1-based, except with answer='none')."""
    rows: dict[str, list[Any]] = {
        k: []
        for k in (
            "image_name",
            "image",
            "question",
            "choices",
            "correct_index",
            "correct_answer",
            "cot",
            "task_str",
            "image_caption",
            "images_source",
        )
    }
    for i in range(n):
        position = (i % 3) + 1
        labels = [str(j + 1) for j in range(4)] if prefix == "num" else list("ABCD")
        if prefix == "num":
            choices = [f"{labels[j]}) {c}" for j, c in enumerate(CHOICES)]
        elif prefix == "letter":
            choices = [f"{labels[j]}. {c}" for j, c in enumerate(CHOICES)]
        else:
            choices = list(CHOICES)
        if answer == "labelled":
            correct = choices[position]
        elif answer == "label":
            correct = labels[position]
        else:
            correct = CHOICES[position]
        rows["image_name"].append(f"pp_{seed + i}")
        rows["image"].append(image_struct(seed + i))
        rows["question"].append(f"Which stain marks structure {i}?")
        rows["choices"].append(choices)
        rows["correct_index"].append(position + (1 if one_based else 0))
        rows["correct_answer"].append(correct)
        rows["cot"].append(f"Reasoning {i}.")
        rows["task_str"].append("expert_visual_understanding")
        rows["image_caption"].append(caption(seed + i))
        rows["images_source"].append("pmc")
    if answer == "none":
        rows.pop("correct_answer")
    return write_parquet(path, rows, MICROVQA_PP_TYPES)


def write_microvqa(path: Path, n: int, images_per_row: int = 2, seed: int = 5000) -> Path:
    """MicroVQA benchmark layout: several images per question, 0-based index."""
    rows: dict[str, list[Any]] = {
        k: []
        for k in (
            "key_question",
            "key_image",
            "images_list",
            "question",
            "choices",
            "correct_index",
            "correct_answer",
            "task",
            "task_str",
            "image_caption",
        )
    }
    for i in range(n):
        base = seed + 10 * i
        rows["key_question"].append(100 + i)
        rows["key_image"].append(200 + i)
        rows["images_list"].append([image_struct(base + j) for j in range(images_per_row)])
        rows["question"].append(f"What explains the phenotype in experiment {i}?")
        rows["choices"].append(list(CHOICES))
        rows["correct_index"].append(i % 4)
        rows["correct_answer"].append(CHOICES[i % 4])
        rows["task"].append(i % 3 + 1)
        rows["task_str"].append("hypothesis_generation")
        rows["image_caption"].append(caption(base))
    types = {
        "key_question": pa.int64(),
        "key_image": pa.int64(),
        "images_list": pa.list_(IMAGE_STRUCT),
        "question": pa.string(),
        "choices": pa.list_(pa.string()),
        "correct_index": pa.int64(),
        "correct_answer": pa.string(),
        "task": pa.int64(),
        "task_str": pa.string(),
        "image_caption": pa.string(),
    }
    return write_parquet(path, rows, types)


# ---------------------------------------------------------------------- webdataset
def tar_member(tf: tarfile.TarFile, name: str, data: bytes, **attrs: Any) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    tf.addfile(info, io.BytesIO(data))


def write_shard(path: Path, samples: Iterable[tuple[str, dict[str, bytes]]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for key, members in samples:
            for ext, data in members.items():
                tar_member(tf, f"{key}.{ext}", data)
    return path


def wds_samples(n: int, start: int = 0) -> list[tuple[str, dict[str, bytes]]]:
    """BIOMEDICA-style samples: jpg + json (caption, pmcid, license); every third uses .txt."""
    samples = []
    for i in range(start, start + n):
        members = {"jpg": image_bytes(6000 + i, "JPEG")}
        if i % 3 == 2:
            members["txt"] = caption(6000 + i).encode()
        else:
            members["json"] = json.dumps(
                {
                    "caption": caption(6000 + i),
                    "pmcid": f"PMC{i}",
                    "license": "CC-BY-4.0",
                    "figure_type": "microscopy",
                }
            ).encode()
        samples.append((f"sample{i:04d}", members))
    return samples


def write_shards(folder: Path, n: int, per_shard: int = 5) -> Path:
    samples = wds_samples(n)
    for s in range(0, n, per_shard):
        write_shard(folder / f"shard-{s // per_shard:04d}.tar", samples[s : s + per_shard])
    return folder


# ---------------------------------------------------------------------- store views
def ids(store, table: str) -> set[str]:
    return store.ids(table)


def snapshot(store) -> dict[str, set[str]]:
    """The id set of every ingest table: equal snapshots mean the same rows."""
    return {table: store.ids(table) for table in TABLES}


def quarantine_by_ref(store) -> dict[str, str]:
    rows = store.page("quarantine", columns=["ref", "reason"], limit=10_000)
    return {row["ref"]: row["reason"] for row in rows}


class CancelAfterFirstBatch(RecordingProgress):
    """A progress reporter that asks for cancellation as soon as one batch is written."""

    def __init__(self, token: CancelToken) -> None:
        super().__init__()
        self.token = token

    def advance(self, amount: int = 1) -> None:
        super().advance(amount)
        self.token.cancel()
