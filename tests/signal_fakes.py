"""Small deterministic signal models, picklable to Ray actors (importable there as
`tests.signal_fakes`, unlike a test module)."""

from __future__ import annotations

import zlib

import numpy as np

from microvqa_tui.models.client import ScriptedClient


class HashText:
    """A text encoder: a unit vector from the words' hashes (same text, same vector)."""

    model_id = "hash-text"

    def encode(self, texts):
        out = np.zeros((len(texts), 16), np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, zlib.crc32(word.encode()) % 16] += 1.0
        return out


class HashNLI:
    """NLI probabilities from the premise and hypothesis lengths."""

    model_id = "hash-nli"

    def score(self, premises, hypotheses):
        rows = [
            [len(p) % 7 + 1.0, len(h) % 5 + 1.0, 1.0]
            for p, h in zip(premises, hypotheses, strict=True)
        ]
        probs = np.asarray(rows, np.float32)
        return probs / probs.sum(axis=1, keepdims=True)


def _agent_reply(request):
    if "supported" in request.schema["properties"]:
        return {"supported": "yes" if len(str(request.messages)) % 2 else "no"}
    return {"answer": "Nevus cells in the dermis"}


class Agent(ScriptedClient):
    """The scripted agent, picklable to Ray actors (made anew there: its locks stay here)."""

    def __init__(self) -> None:
        super().__init__(_agent_reply, "hash-agent")

    def __reduce__(self):
        return (Agent, ())
