"""Real small data for the dedup / split / export / eval tests: generated textured images,
their resized / re-encoded / cropped copies, paraphrased captions, and MCQs in a store."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from microvqa_tui.vocabulary import REVIEW_ACCEPTED, STATUS_KEPT, TASK_TYPES
from store import Store, content_id, text_id
from store.schema import utcnow

TOPICS = [
    ("mitochondria", "HeLa cells", "MitoTracker", "fragmented networks after CCCP treatment"),
    ("nuclei", "U2OS cells", "DAPI", "enlarged nuclei with condensed chromatin"),
    ("actin", "fibroblasts", "phalloidin", "dense stress fibres along the cell axis"),
    ("microtubules", "neurons", "anti-tubulin", "bundled microtubules in the axon shaft"),
    ("glomeruli", "kidney sections", "PAS stain", "thickened basement membranes"),
    ("hepatocytes", "liver biopsies", "H&E", "macrovesicular steatosis around the central vein"),
    ("cilia", "airway epithelium", "acetylated tubulin", "shortened cilia on ciliated cells"),
    ("synapses", "hippocampal slices", "synaptophysin", "reduced puncta in the CA1 region"),
    ("myofibrils", "cardiomyocytes", "alpha-actinin", "disorganised Z-discs"),
    ("lysosomes", "macrophages", "LAMP1", "swollen perinuclear vesicles"),
    ("bacteria", "biofilms", "SYTO9", "dense clusters attached to the glass surface"),
    ("chloroplasts", "leaf cells", "chlorophyll autofluorescence", "swollen thylakoid stacks"),
    ("endothelium", "retinal vessels", "isolectin B4", "tortuous sprouting at the vascular front"),
    ("keratinocytes", "skin sections", "K14", "thickened basal layer"),
    ("oocytes", "mouse ovaries", "DDX4", "primordial follicles in the cortex"),
    ("Golgi", "epithelial cells", "GM130", "dispersed Golgi ministacks"),
    ("stomata", "Arabidopsis epidermis", "propidium iodide", "clustered guard cells"),
    ("sperm", "testis tubules", "PNA lectin", "acrosome defects in round spermatids"),
    ("podocytes", "zebrafish larvae", "nephrin", "effaced foot processes"),
    ("tumour spheroids", "organoid cultures", "Ki-67", "a proliferative outer rim"),
]


def textured_image(seed: int, size: tuple[int, int] = (320, 256)) -> Image.Image:
    """A colour image with multi-scale noise texture and a few discs: distinct per seed."""
    rng = np.random.default_rng(seed)
    w, h = size
    acc = np.zeros((h, w, 3), np.float32)
    for scale in (4, 16, 64):
        noise = rng.standard_normal((h // scale + 2, w // scale + 2, 3)).astype(np.float32)
        noise = ((noise - noise.min()) / (noise.max() - noise.min()) * 255).astype(np.uint8)
        layer = Image.fromarray(noise).resize((w, h), Image.Resampling.BICUBIC)
        acc += np.asarray(layer, np.float32) * (scale / 64)
    image = Image.fromarray((acc / acc.max() * 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y, r = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(8, 40))
        draw.ellipse(
            [x - r, y - r, x + r, y + r], fill=tuple(int(v) for v in rng.integers(0, 255, 3))
        )
    return image


def encode(image: Image.Image, fmt: str = "PNG", **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image = image.convert("RGB")
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def variants(image: Image.Image) -> dict[str, bytes]:
    """Near-duplicate copies: resized, re-encoded, centre-cropped, corner-cropped, trimmed."""
    w, h = image.size
    return {
        "resized": encode(image.resize((w // 2, h // 2), Image.Resampling.LANCZOS)),
        "jpeg": encode(image, "JPEG", quality=60),
        "centre_crop": encode(image.crop((int(w * 0.1), int(h * 0.1), int(w * 0.9), int(h * 0.9)))),
        "corner_crop": encode(image.crop((0, 0, int(w * 0.85), int(h * 0.85)))),
        "trimmed_jpeg": encode(image.crop((8, 8, w - 8, h - 8)), "JPEG", quality=80),
    }


def figure_row(data: bytes, **overrides: Any) -> dict[str, Any]:
    with Image.open(io.BytesIO(data)) as image:
        width, height, fmt, mode = image.width, image.height, image.format, image.mode
    row = {
        "figure_id": content_id(data),
        "content_hash": content_id(data),
        "image_bytes": data,
        "image_path": f"{content_id(data)[:8]}.{fmt.lower()}",
        "width": width,
        "height": height,
        "format": fmt,
        "mode": mode,
        "byte_size": len(data),
        "source_kind": "folder",
        "source": "tests",
        "ingested_at": utcnow(),
        "license": "CC-BY-4.0",
        "attribution": "test figure",
    }
    row.update(overrides)
    return row


def caption_for(topic: tuple[str, str, str, str]) -> str:
    what, sample, stain, finding = topic
    return f"Fluorescence micrograph of {what} in {sample} stained with {stain}, showing {finding}. Scale bar 10 um."


def paraphrase_caption(topic: tuple[str, str, str, str]) -> str:
    what, sample, stain, finding = topic
    return f"Fluorescence micrograph of {what} in {sample}, stained with {stain} and showing {finding}. Scale bar: 10 um."


def question_for(topic: tuple[str, str, str, str], variant: int = 0) -> tuple[str, list[str], int]:
    what, sample, stain, finding = topic
    question = (
        f"In this image of {sample} stained with {stain}, which feature of the {what} is most evident?"
        if variant == 0
        else f"In this image of {sample}, stained with {stain}, which feature of the {what} is the most evident?"
    )
    choices = [finding, "no visible change", "complete loss of signal", "uniform diffuse staining"]
    return question, choices, 0


@dataclass
class Dataset:
    store: Store
    base_figures: list[str] = field(default_factory=list)  # one per topic, distinct
    planted: dict[str, list[str]] = field(default_factory=dict)  # base figure -> its copies
    captions: dict[str, str] = field(default_factory=dict)  # figure -> caption_id
    paraphrased: list[tuple[str, str]] = field(default_factory=list)  # caption id pairs
    mcqs: list[str] = field(default_factory=list)
    near_dup_questions: list[tuple[str, str]] = field(default_factory=list)


def mcq_row(
    figure_id: str, question: str, choices: list[str], correct: int, **overrides: Any
) -> dict[str, Any]:
    row = {
        "mcq_id": text_id("mcq", figure_id, question, *choices),
        "figure_id": figure_id,
        "image_ids": [figure_id],
        "question": question,
        "choices": choices,
        "correct_index": correct,
        "correct_answer": choices[correct],
        "cot": "The stain marks the structure; the visible pattern matches the first option.",
        "task_str": TASK_TYPES[0],
        "family": "caption",
        "bloom_level": 2,
        "review": REVIEW_ACCEPTED,
        "status": STATUS_KEPT,
        "origin": "test",
        "created_at": utcnow(),
    }
    row.update(overrides)
    return row


def build_dataset(
    store: Store,
    *,
    n_topics: int = 8,
    copies: tuple[str, ...] = ("resized", "jpeg", "centre_crop", "corner_crop", "trimmed_jpeg"),
    articles: bool = True,
) -> Dataset:
    """`n_topics` distinct figures, each with caption and MCQ; the first two get planted image
    copies (with their own captions/MCQs), the first three a paraphrased caption, and the first
    two a near-duplicate question. Tasks and Bloom levels cycle for stratification tests."""
    ds = Dataset(store)
    figures, captions, mcqs = [], [], []
    for t in range(n_topics):
        topic = TOPICS[t % len(TOPICS)]
        image = textured_image(1000 + t)
        article = f"PMC{100000 + t // 2}" if articles else ""
        base = figure_row(encode(image), article_id=article, original_id=f"fig{t}")
        figures.append(base)
        ds.base_figures.append(base["figure_id"])
        cap = {
            "caption_id": text_id(base["figure_id"], caption_for(topic)),
            "figure_id": base["figure_id"],
            "text": caption_for(topic),
            "created_at": utcnow(),
        }
        captions.append(cap)
        ds.captions[base["figure_id"]] = cap["caption_id"]
        q, choices, correct = question_for(topic)
        task = TASK_TYPES[t % 3]
        m = mcq_row(base["figure_id"], q, choices, correct, task_str=task, bloom_level=1 + t % 4)
        mcqs.append(m)
        ds.mcqs.append(m["mcq_id"])
        if t < 2:
            ds.planted[base["figure_id"]] = []
            for name, data in variants(image).items():
                if name not in copies:
                    continue
                copy = figure_row(
                    data,
                    article_id=f"PMC9{t}{len(ds.planted[base['figure_id']])}",
                    original_id=f"fig{t}-{name}",
                )
                figures.append(copy)
                ds.planted[base["figure_id"]].append(copy["figure_id"])
                # Copies carry unrelated text (another paper reusing the figure), so they only
                # group as images.
                other = TOPICS[(8 + 5 * t + len(ds.planted[base["figure_id"]])) % len(TOPICS)]
                ctext = (
                    f"Panel {name}: {other[0]} imaged in {other[1]} with {other[2]}; {other[3]}."
                )
                captions.append(
                    {
                        "caption_id": text_id(copy["figure_id"], ctext),
                        "figure_id": copy["figure_id"],
                        "text": ctext,
                        "created_at": utcnow(),
                    }
                )
                q2, ch2, c2 = question_for(other)
                m2 = mcq_row(copy["figure_id"], q2, ch2, c2, task_str=task, bloom_level=1 + t % 4)
                mcqs.append(m2)
                ds.mcqs.append(m2["mcq_id"])
        if t < 3:
            para = paraphrase_caption(topic)
            pid = text_id(base["figure_id"], para)
            captions.append(
                {
                    "caption_id": pid,
                    "figure_id": base["figure_id"],
                    "text": para,
                    "created_at": utcnow(),
                }
            )
            ds.paraphrased.append((cap["caption_id"], pid))
        if t < 2:
            q3, ch3, c3 = question_for(topic, variant=1)
            m3 = mcq_row(
                base["figure_id"],
                q3,
                ch3,
                c3,
                task_str=task,
                bloom_level=1 + t % 4,
                review="unreviewed",
            )
            mcqs.append(m3)
            ds.mcqs.append(m3["mcq_id"])
            ds.near_dup_questions.append((m["mcq_id"], m3["mcq_id"]))
    store.insert_new("figures", figures)
    store.insert_new("captions", captions)
    store.insert_new("mcqs", mcqs)
    return ds


class FakeTextEncoder:
    """A deterministic stand-in for MiniLM: bag-of-words vectors (hashed), unit length."""

    name = "fake-bow"

    def encode(self, texts, **_: Any):
        out = np.zeros((len(texts), 256), np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().replace(",", " ").replace(".", " ").replace(":", " ").split():
                out[row, int(content_id(word.encode())[:6], 16) % 256] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1
        return out / norms
