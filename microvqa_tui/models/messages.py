"""Chat messages with images, in the OpenAI form both backends take (image_url data URIs)."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from microvqa_tui.errors import ModelError

#: Image formats llama.cpp's decoder (stb_image) reads; others are re-encoded as PNG.
_STB_FORMATS = {"JPEG", "PNG", "BMP", "GIF"}


def image_data_uri(data: bytes) -> str:
    """`data:` URI for image bytes; formats llama.cpp cannot decode are re-encoded as PNG."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format or ""
            if fmt not in _STB_FORMATS:
                buffer = io.BytesIO()
                image.convert("RGB").save(buffer, format="PNG")
                data, fmt = buffer.getvalue(), "PNG"
    except Exception as exc:
        raise ModelError(f"cannot read an image passed to the vision model: {exc}") from exc
    mime = {"JPEG": "image/jpeg", "PNG": "image/png", "BMP": "image/bmp", "GIF": "image/gif"}
    return f"data:{mime[fmt]};base64,{base64.b64encode(data).decode('ascii')}"


def _as_image_part(image: bytes | str | Path) -> dict[str, Any]:
    if isinstance(image, (str, Path)) and not str(image).startswith("data:"):
        image = Path(image).read_bytes()
    url = image if isinstance(image, str) else image_data_uri(bytes(image))
    return {"type": "image_url", "image_url": {"url": url}}


def prepare_messages(
    messages: Sequence[Mapping[str, Any]], images: Sequence[bytes | str | Path] = ()
) -> tuple[list[dict[str, Any]], int]:
    """Messages in llama-cpp-python's OpenAI form, and how many images they carry.

    A content part `{"type": "image", "image": <bytes>}` (or raw bytes) becomes an image_url
    part with a data URI; `images` are put before the text of the last user message.
    """
    out: list[dict[str, Any]] = []
    n_images = 0
    for message in messages:
        msg = dict(message)
        content = msg.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                if isinstance(part, (bytes, bytearray, memoryview)):
                    parts.append(_as_image_part(bytes(part)))
                elif isinstance(part, Mapping) and part.get("type") == "image":
                    parts.append(_as_image_part(part["image"]))
                else:
                    parts.append(dict(part) if isinstance(part, Mapping) else part)
            n_images += sum(
                1 for p in parts if isinstance(p, dict) and p.get("type") == "image_url"
            )
            msg["content"] = parts
        out.append(msg)
    if images:
        users = [i for i, m in enumerate(out) if m.get("role") == "user"]
        if not users:
            raise ModelError("images were given but there is no user message to attach them to")
        last = out[users[-1]]
        content = last.get("content")
        text_parts = (
            [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        )
        last["content"] = [*(_as_image_part(img) for img in images), *text_parts]
        n_images += len(images)
    return out, n_images
