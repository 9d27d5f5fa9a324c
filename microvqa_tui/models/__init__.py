"""The model layer: one small, uniform API over every checkpoint a pipeline stage uses.

Stages ask `registry` for a role (clip, nli, text, llm, vlm) and get a loaded model with a
batched, device-agnostic API. Heavy libraries (torch, open_clip, transformers,
sentence_transformers, llama_cpp) are imported only when a model is loaded, so importing
this package costs nothing.
"""

from __future__ import annotations

ROLES = ("clip", "nli", "text", "llm", "vlm")

__all__ = ["ROLES"]
