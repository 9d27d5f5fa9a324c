"""`microvqa models verify`: load each present model and run one real input through it."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from microvqa_tui.errors import MicroVQAError
from microvqa_tui.models import registry

if TYPE_CHECKING:  # annotations only
    from microvqa_tui.models.locate import ModelSource

_PROBE_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string", "maxLength": 16}},
    "required": ["answer"],
}
_PROBE_MESSAGES = [
    {"role": "system", "content": "Reply with JSON."},
    {"role": "user", "content": "Name one organelle visible in fluorescence microscopy."},
]


def probe_image() -> bytes:
    """A 96x96 PNG: dark background with bright 'nuclei' (deterministic)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (96, 96), (10, 10, 30))
    draw = ImageDraw.Draw(image)
    for x, y in ((20, 25), (60, 30), (40, 65)):
        draw.ellipse((x, y, x + 18, y + 16), fill=(60, 90, 240))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _unit(rows: np.ndarray) -> bool:
    return bool(
        np.all(np.isfinite(rows)) and np.allclose(np.linalg.norm(rows, axis=1), 1, atol=1e-3)
    )


def _check_clip(settings: ModelSource) -> str:
    clip = registry.get_clip(settings)
    img = clip.encode_images([probe_image()])
    txt = clip.encode_texts(["a fluorescence micrograph of cell nuclei", "a bar chart"])
    if img.shape != (1, clip.dim) or txt.shape != (2, clip.dim) or not (_unit(img) and _unit(txt)):
        raise RuntimeError(f"unexpected embeddings: {img.shape}, {txt.shape}")
    sims = clip.image_text_similarity(img, txt)[0]
    return f"dim {clip.dim}, image-text cosine {sims[0]:.3f} / {sims[1]:.3f} on {clip.device}"


def _check_nli(settings: ModelSource) -> str:
    nli = registry.get_nli(settings)
    scores = nli.score(
        ["Nuclei were stained with DAPI and appear blue."] * 2,
        ["The nuclei appear blue.", "No nuclei are visible."],
    )
    if not np.allclose(scores.probs.sum(axis=1), 1, atol=1e-3):
        raise RuntimeError(f"probabilities do not sum to 1: {scores.probs}")
    return (
        f"entailment {scores.entailment[0]:.2f} (supported) vs {scores.entailment[1]:.2f}, "
        f"contradiction {scores.contradiction[1]:.2f} (contradicted) on {nli.device}"
    )


def _check_text(settings: ModelSource) -> str:
    enc = registry.get_text(settings)
    rows = enc.encode(["Confocal image of HeLa cells.", "Fluorescence micrograph of cells."])
    if rows.shape[0] != 2 or not _unit(rows):
        raise RuntimeError(f"unexpected embeddings {rows.shape}")
    return f"dim {rows.shape[1]}, cosine {float(rows[0] @ rows[1]):.3f} on {enc.device}"


def _check_llm(settings: ModelSource, *, vision: bool = False) -> str:
    from microvqa_tui.models.client import LLMRequest, Sampling

    llm = registry.get_vlm(settings) if vision else registry.get_llm(settings)
    result = llm.ask(
        LLMRequest(
            _PROBE_MESSAGES,
            _PROBE_SCHEMA,
            images=(probe_image(),) if vision else (),
            sampling=Sampling(max_tokens=96),
            timeout_s=min(120.0, registry.models_section(settings).llm_timeout_s),
        )
    )
    if result.error or not isinstance(result.value, dict) or "answer" not in result.value:
        raise RuntimeError(f"unexpected output {result.raw!r} {result.message}".strip())
    return (
        f"{result.completion_tokens} tokens in {result.seconds:.1f} s "
        f"({result.tokens_per_s:.1f} tokens/s) on {llm.device}: {result.value['answer']!r}"
    )


CHECKS: dict[str, Callable[[Any], str]] = {
    "clip": _check_clip,
    "nli": _check_nli,
    "text": _check_text,
    "llm": _check_llm,
    "vlm": lambda s: _check_llm(s, vision=True),
}


def verify(settings: ModelSource, roles: Sequence[str] = ()) -> list[dict[str, Any]]:
    """One row per role: role, model, status (ok | missing | unset | failed), detail,
    seconds, fetch. Models are released afterwards."""
    wanted = list(roles) or list(registry.ROLES)
    rows = []
    try:
        for role in wanted:
            info = registry.describe(role, settings)
            row: dict[str, Any] = {"role": role, "model": info.model, "seconds": 0.0, "fetch": ""}
            if not info.present:
                row.update(
                    status="unset" if info.source == "unset" else "missing",
                    detail=info.detail,
                    fetch=info.fetch,
                )
                rows.append(row)
                continue
            start = time.perf_counter()
            try:
                row.update(status="ok", detail=CHECKS[role](settings))
            except MicroVQAError as exc:
                row.update(status="failed", detail=str(exc))
            except Exception as exc:  # a broken model must be reported, not crash the command
                row.update(status="failed", detail=f"{type(exc).__name__}: {exc}")
            row["seconds"] = round(time.perf_counter() - start, 2)
            rows.append(row)
            registry.release(role)
    finally:
        registry.release()
    return rows
