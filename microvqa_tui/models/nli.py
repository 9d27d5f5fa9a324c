"""Natural language inference (premise -> hypothesis) with any transformers classifier.

    nli = load_nli("/models/MoritzLaurer--DeBERTa-v3-base-mnli-fever-anli")
    scores = nli.score(premises, hypotheses)     # NliScores
    scores.entailment, scores.neutral, scores.contradiction   # (N,) float32 each

The label order is read from the checkpoint's `id2label` (or `label2id`); nothing assumes
an order. A checkpoint whose labels are not entailment/neutral/contradiction is refused.
Long premises are truncated, never the hypothesis (truncation="only_first"); only a pair
whose hypothesis alone does not fit falls back to truncating both.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from microvqa_tui.errors import ModelError, ModelMissingError
from microvqa_tui.models.device import auto_batch_size, inference, quiet_transformers

LABELS = ("entailment", "neutral", "contradiction")
_GENERIC = re.compile(r"^label_?\d+$")


def nli_label_indices(
    id2label: Mapping[Any, str] | None, label2id: Mapping[str, Any] | None = None
) -> dict[str, int]:
    """{'entailment': i, 'neutral': j, 'contradiction': k} from a model config's label maps.

    Accepts usual spellings (ENTAILMENT, entail, contradict, not_entailment is refused).
    Raises ModelError naming the labels found when they are not a 3-way NLI set.
    """
    pairs: list[tuple[int, str]] = []
    if id2label:
        pairs = [(int(i), str(name)) for i, name in id2label.items()]
    if (not pairs or all(_GENERIC.match(n.lower()) for _, n in pairs)) and label2id:
        pairs = [(int(i), str(name)) for name, i in label2id.items()]
    found: dict[str, int] = {}
    for index, name in pairs:
        key = name.strip().lower().replace("-", "_").replace(" ", "_")
        if key.startswith(("not_", "non_", "no_")):
            continue
        if key.startswith("entail"):
            canonical = "entailment"
        elif key.startswith("neutral"):
            canonical = "neutral"
        elif key.startswith("contradict"):
            canonical = "contradiction"
        else:
            continue
        if canonical in found and found[canonical] != index:
            raise ModelError(f"two labels map to '{canonical}' in {dict(pairs)}")
        found[canonical] = index
    missing = [label for label in LABELS if label not in found]
    if missing:
        shown = {i: n for i, n in sorted(pairs)}
        raise ModelError(
            f"the classifier's labels {shown} are not NLI labels (missing: {', '.join(missing)})",
            hint="use a 3-way NLI checkpoint (entailment/neutral/contradiction in config.json id2label)",
        )
    return found


@dataclass
class NliScores:
    """Probabilities per pair; `probs` columns are entailment, neutral, contradiction."""

    probs: np.ndarray

    @property
    def entailment(self) -> np.ndarray:
        return self.probs[:, 0]

    @property
    def neutral(self) -> np.ndarray:
        return self.probs[:, 1]

    @property
    def contradiction(self) -> np.ndarray:
        return self.probs[:, 2]

    def __len__(self) -> int:
        return int(self.probs.shape[0])

    def label(self) -> list[str]:
        """The most probable label of each pair."""
        return [LABELS[i] for i in np.argmax(self.probs, axis=1)]

    def to_dicts(self) -> list[dict[str, float]]:
        return [dict(zip(LABELS, map(float, row), strict=True)) for row in self.probs]


class NliModel:
    """A loaded sequence-pair classifier with NLI labels."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        device: str,
        model_id: str,
        path: Path | None = None,
        batch_size: int = 0,
        max_length: int | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.model_id = model_id
        self.path = path
        self.batch_size = auto_batch_size("nli", device, batch_size)
        config = model.config
        self.label_index = nli_label_indices(
            getattr(config, "id2label", None), getattr(config, "label2id", None)
        )
        self._order = [self.label_index[label] for label in LABELS]
        limits = [
            max_length,
            getattr(tokenizer, "model_max_length", None),
            getattr(config, "max_position_embeddings", None),
            512,
        ]
        # tokenizers report 1e30 when they have no limit; positions bound it anyway
        self.max_length = int(min(v for v in limits if isinstance(v, int) and v > 0))
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.model_id

    def _encode(self, premises: list[str], hypotheses: list[str]) -> Any:
        kwargs = {"max_length": self.max_length, "padding": True, "return_tensors": "pt"}
        try:
            return self.tokenizer(premises, hypotheses, truncation="only_first", **kwargs)
        except Exception:
            pass  # some hypothesis is longer than the window on its own: per pair below
        rows = []
        for p, h in zip(premises, hypotheses, strict=True):
            try:
                rows.append(
                    self.tokenizer(p, h, truncation="only_first", max_length=self.max_length)
                )
            except Exception:
                rows.append(
                    self.tokenizer(p, h, truncation="longest_first", max_length=self.max_length)
                )
        return self.tokenizer.pad(rows, padding=True, return_tensors="pt")

    def _logits(self, premises: list[str], hypotheses: list[str]) -> np.ndarray:
        import torch

        batch = self._encode(premises, hypotheses)
        batch = {k: v.to(self.device) for k, v in batch.items()}
        with inference(self.device):
            logits = self.model(**batch).logits
        return torch.softmax(logits.float(), dim=-1).cpu().numpy()

    def score(
        self,
        premises: Sequence[str],
        hypotheses: Sequence[str],
        *,
        batch_size: int | None = None,
    ) -> NliScores:
        """Entailment/neutral/contradiction probabilities of each (premise, hypothesis).

        Pairs are batched by length (less padding) and returned in input order.
        """
        if len(premises) != len(hypotheses):
            raise ValueError("premises and hypotheses must have the same length")
        n = len(premises)
        probs = np.zeros((n, 3), dtype=np.float32)
        if n == 0:
            return NliScores(probs)
        p = [str(x) for x in premises]
        h = [str(x) for x in hypotheses]
        order = np.argsort([-(len(a) + len(b)) for a, b in zip(p, h, strict=True)], kind="stable")
        bs = batch_size or self.batch_size
        with self._lock:
            for start in range(0, n, bs):
                idx = order[start : start + bs]
                out = self._logits([p[i] for i in idx], [h[i] for i in idx])
                probs[idx] = out[:, self._order]
        return NliScores(probs)

    def entailment(self, premises: Sequence[str], hypotheses: Sequence[str]) -> np.ndarray:
        return self.score(premises, hypotheses).entailment

    def close(self) -> None:
        self.model = None


def load_nli(
    path: str | Path,
    *,
    device: str = "cpu",
    batch_size: int = 0,
    max_length: int | None = None,
    model_id: str | None = None,
) -> NliModel:
    """Load a local NLI checkpoint folder (config.json, weights, tokenizer files)."""
    path = Path(path).expanduser()
    if not (path / "config.json").is_file():
        raise ModelMissingError(f"NLI checkpoint not found (no config.json): {path}")
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except Exception as exc:
        raise ModelError(f"cannot read the NLI config in {path}: {exc}") from exc
    # refuse non-NLI heads before loading weights
    nli_label_indices(getattr(config, "id2label", None), getattr(config, "label2id", None))
    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model, info = AutoModelForSequenceClassification.from_pretrained(
                path, local_files_only=True, config=config, output_loading_info=True
            )
    except Exception as exc:
        raise ModelError(f"transformers cannot load the NLI model in {path}: {exc}") from exc
    missing = [k for k in (info or {}).get("missing_keys", []) if not k.endswith("position_ids")]
    if missing:  # transformers would initialise these at random (e.g. a base model, no head)
        shown = ", ".join(sorted(missing)[:5])
        raise ModelError(
            f"the NLI checkpoint in {path} lacks trained weights for: {shown}",
            hint="use a fine-tuned NLI checkpoint, not a base model",
        )
    model.to(device).eval()
    return NliModel(
        model,
        tokenizer,
        device=device,
        model_id=model_id or path.name,
        path=path,
        batch_size=batch_size,
        max_length=max_length,
    )
