"""The three export formats, each streaming rows (and images) batch by batch.

- parquet: `data/<split>-00000-of-00001.parquet` in the MicroVQA++ layout, `image` as the
  Hugging Face image struct {bytes, path} with HF feature metadata so `datasets` decodes it
  as an Image; extras (split, bloom_level, ...) beside it.
- jsonl: `<split>.jsonl` + `images/`, one JSON object per line, images by relative path.
- llava: `llava_<split>.json` (a JSON list of LLaVA/ShareGPT conversations) + `images/`.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

from microvqa_tui.pipeline.export.paths import safe_path, write_bytes

LETTERS = string.ascii_uppercase

# HF features for the image columns; everything else is inferred from the Arrow types.
# "Sequence" of Image loads as a list of images in datasets 2.x–5.x.
HF_FEATURES = {
    "image": {"_type": "Image"},
    "extra_images": {"_type": "Sequence", "feature": {"_type": "Image"}},
}

PARQUET_COLUMNS = [
    # MicroVQA++ layout
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
    # extras
    "split",
    "mcq_id",
    "figure_id",
    "image_names",
    "extra_images",
    "bloom_level",
    "difficulty_tier",
    "family",
    "origin",
    "status",
    "review",
    "article_id",
    "license",
    "attribution",
]


def parquet_schema():
    import pyarrow as pa

    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    fields = {
        "image_name": pa.string(),
        "image": image,
        "question": pa.string(),
        "choices": pa.list_(pa.string()),
        "correct_index": pa.int64(),
        "correct_answer": pa.string(),
        "cot": pa.string(),
        "task_str": pa.string(),
        "image_caption": pa.string(),
        "images_source": pa.string(),
        "split": pa.string(),
        "mcq_id": pa.string(),
        "figure_id": pa.string(),
        "image_names": pa.list_(pa.string()),
        "extra_images": pa.list_(image),
        "bloom_level": pa.int64(),
        "difficulty_tier": pa.string(),
        "family": pa.string(),
        "origin": pa.string(),
        "status": pa.string(),
        "review": pa.string(),
        "article_id": pa.string(),
        "license": pa.string(),
        "attribution": pa.string(),
    }
    schema = pa.schema([(name, fields[name]) for name in PARQUET_COLUMNS])
    return schema.with_metadata({"huggingface": json.dumps({"info": {"features": HF_FEATURES}})})


def parquet_relpath(split: str) -> str:
    return f"data/{split}-00000-of-00001.parquet"


def split_relpath(fmt: str, split: str) -> str:
    """Where a split's rows go, per format."""
    if fmt == "parquet":
        return parquet_relpath(split)
    return f"llava_{split}.json" if fmt == "llava" else f"{split}.jsonl"


def image_relpath(name: str) -> str:
    return f"images/{name}"


class ParquetSplitWriter:
    def __init__(self, root: Path, split: str) -> None:
        import pyarrow.parquet as pq

        self.relative = parquet_relpath(split)
        self.target = safe_path(root, self.relative)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        safe_path(root, self.relative)
        self.tmp = self.target.with_name(f".{self.target.name}.partial")
        self.schema = parquet_schema()
        self.writer = pq.ParquetWriter(str(self.tmp), self.schema, compression="zstd")
        self.rows = 0

    def write(
        self, records: list[dict[str, Any]], images: dict[str, bytes], names: dict[str, str]
    ) -> None:
        import pyarrow as pa

        rows = []
        for rec in records:
            ids = rec["image_ids"]
            rows.append(
                {
                    **{k: rec.get(k) for k in PARQUET_COLUMNS if k in rec},
                    "image": {"bytes": images[ids[0]], "path": names[ids[0]]},
                    "extra_images": [{"bytes": images[f], "path": names[f]} for f in ids[1:]],
                }
            )
        table = pa.Table.from_pylist(rows, schema=self.schema)
        self.writer.write_table(table, row_group_size=max(1, len(rows)))
        self.rows += len(rows)

    def close(self) -> str:
        import os

        self.writer.close()
        os.replace(self.tmp, self.target)
        return self.relative


def record_to_json(rec: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    paths = [image_relpath(names[f]) for f in rec["image_ids"]]
    out = {k: rec.get(k) for k in PARQUET_COLUMNS if k not in ("image", "extra_images")}
    out["image"] = paths[0]
    out["images"] = paths
    return out


def options_block(choices: list[str]) -> str:
    return "\n".join(f"({LETTERS[i]}) {choice}" for i, choice in enumerate(choices))


def llava_record(rec: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """A LLaVA/ShareGPT conversation: question with lettered options → CoT → answer."""
    paths = [image_relpath(names[f]) for f in rec["image_ids"]]
    letter = LETTERS[rec["correct_index"]]
    human = (
        "<image>\n" * len(paths)
        + f"{rec['question']}\n{options_block(rec['choices'])}\n"
        + "Think step by step, then give the letter of the correct option."
    )
    answer = f"Answer: ({letter}) {rec['correct_answer']}"
    gpt = f"{rec['cot'].strip()}\n{answer}" if (rec.get("cot") or "").strip() else answer
    return {
        "id": rec["mcq_id"],
        "image": paths[0] if len(paths) == 1 else paths,
        "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": gpt}],
        "split": rec["split"],
        "task_str": rec.get("task_str", ""),
        "bloom_level": rec.get("bloom_level"),
    }


class JsonLinesWriter:
    """`<split>.jsonl`, or (llava) one JSON list in `llava_<split>.json`, streamed."""

    def __init__(self, root: Path, split: str, llava: bool) -> None:
        self.relative = split_relpath("llava" if llava else "jsonl", split)
        self.llava = llava
        self.target = safe_path(root, self.relative)
        self.tmp = self.target.with_name(f".{self.target.name}.partial")
        self.handle = self.tmp.open("w", encoding="utf-8")
        self.rows = 0
        if llava:
            self.handle.write("[\n")

    def write(self, records: list[dict[str, Any]], names: dict[str, str]) -> None:
        for rec in records:
            obj = llava_record(rec, names) if self.llava else record_to_json(rec, names)
            text = json.dumps(obj, ensure_ascii=False)
            if self.llava:
                self.handle.write((",\n" if self.rows else "") + text)
            else:
                self.handle.write(text + "\n")
            self.rows += 1

    def close(self) -> str:
        import os

        if self.llava:
            self.handle.write("\n]\n")
        self.handle.close()
        os.replace(self.tmp, self.target)
        return self.relative


def write_image(root: Path, name: str, data: bytes) -> str:
    relative = image_relpath(name)
    write_bytes(root, relative, data)
    return relative
