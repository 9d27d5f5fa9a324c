"""Helpers of the stage-1, embed and signals tests: real sample rows, fake models, settings.

The fakes implement only the small interfaces the steps use:

* `FakeLLM` — an LLM client (`ScriptedClient`) whose `reply(messages, schema, n)` gives a
  JSON value, the raw text (parsed strictly like a model's) or raises;
* `Provider.get_<role>(settings)` — a model, or `ModelMissingError` for an absent one.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from microvqa_tui.config import Settings
from microvqa_tui.errors import ModelMissingError
from microvqa_tui.models.client import LLMRequest, ScriptedClient
from store.ids import content_id, text_id
from store.schema import utcnow

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DIR = REPO / "assets" / "sample"


# --------------------------------------------------------------------------- sample rows
def sample_records(n: int | None = None) -> list[dict[str, Any]]:
    lines = (SAMPLE_DIR / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    return rows[:n] if n else rows


def add_sample(store, n: int = 4, *, image_bytes: bool = True) -> list[dict[str, Any]]:
    """Write the first `n` sample figures and captions (as ingest would); returns the captions."""
    from PIL import Image

    figures, captions = [], []
    now = utcnow()
    for record in sample_records(n):
        data = (SAMPLE_DIR / record["image"]).read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            width, height, fmt, mode = image.width, image.height, image.format, image.mode
        figure_id = content_id(data)
        figures.append(
            {
                "figure_id": figure_id,
                "content_hash": figure_id,
                "image_bytes": data if image_bytes else None,
                "image_path": str(SAMPLE_DIR / record["image"]),
                "width": width,
                "height": height,
                "format": fmt or "",
                "mode": mode,
                "byte_size": len(data),
                "source_kind": "manifest",
                "source": str(SAMPLE_DIR / "manifest.jsonl"),
                "original_id": record["id"],
                "article_id": record.get("article_id", ""),
                "ingested_at": now,
            }
        )
        captions.append(
            {
                "caption_id": text_id(figure_id, record["caption"]),
                "figure_id": figure_id,
                "text": record["caption"],
                "source": "manifest",
                "created_at": now,
            }
        )
    store.insert_new("figures", figures)
    store.insert_new("captions", captions)
    return captions


def add_qa(store, figure_id: str, caption_id: str, question: str, answer: str, **extra: Any) -> str:
    qa_id = text_id(figure_id, question, answer)
    row = {
        "qa_id": qa_id,
        "figure_id": figure_id,
        "caption_id": caption_id,
        "question": question,
        "answer": answer,
        "task_type": extra.pop("task_type", "expert_visual_understanding"),
        "origin": extra.pop("origin", "imported"),
        "created_at": utcnow(),
        **extra,
    }
    store.insert_new("qas", [row])
    return qa_id


def table_rows(store, table: str, columns: list[str]) -> list[tuple]:
    total = store.count(table)
    rows = store.page(table, columns=columns, limit=max(total, 1)) if total else []
    return sorted(tuple(r[c] for c in columns) for r in rows)


# --------------------------------------------------------------------------- settings
def step_settings(settings: Settings, **sections: Any) -> Settings:
    """A copy of the real `settings` with some sections replaced (stage1=..., graph=...):
    a section object, or a dict of its fields (validated like a config file's)."""
    update = {}
    for name, value in sections.items():
        cls = type(getattr(settings, name))
        update[name] = value if isinstance(value, cls) else cls.model_validate(value)
    return settings.model_copy(update=update)


# --------------------------------------------------------------------------- fake LLM
CAPTION_RE = re.compile(r'Figure caption: "(.*)"', re.DOTALL)


def caption_in(messages: list[dict[str, Any]]) -> str:
    text = "\n".join(str(m["content"]) for m in messages)
    match = CAPTION_RE.search(text)
    return match.group(1).split('"\n')[0] if match else ""


def task_in(schema: dict[str, Any]) -> str:
    return schema["properties"]["task_type"]["enum"][0]


QUESTIONS = {
    "expert_visual_understanding": "Which structures does this image show near {w}?",
    "hypothesis_generation": "What biological process best explains the appearance around {w}?",
    "experiment_proposal": "Which experiment would test the interpretation of {w} here?",
}


def good_reply(messages: list[dict[str, Any]], schema: dict[str, Any]) -> dict[str, str]:
    """A QA that passes every check: evidence = the caption's first five words."""
    caption = caption_in(messages)
    words = caption.split()
    task = task_in(schema)
    return {
        "task_type": task,
        "evidence": " ".join(words[:5]),
        "question": QUESTIONS[task].format(w=max(words, key=len).strip(".,;()").lower()),
        "answer": " ".join(words[:5]).rstrip(".,;"),
    }


class FakeLLM(ScriptedClient):
    """Scripted structured-output client: `reply(messages, schema, n)` returns a dict (or a
    string: the raw text, parsed strictly like the real model layer) or raises. `calls`
    records each request as {messages, schema, options}."""

    def __init__(
        self,
        reply: Callable[[list[dict[str, Any]], dict[str, Any], int], Any] | None = None,
        model_id: str = "fake-llm",
    ) -> None:
        script = reply or (lambda messages, schema, n: good_reply(messages, schema))
        self.calls: list[dict[str, Any]] = []

        def answer(request: LLMRequest) -> Any:
            s = request.sampling
            options = {"temperature": s.temperature, "seed": s.seed, "max_tokens": s.max_tokens}
            if request.images:
                options["images"] = list(request.images)
            call = {"messages": request.messages, "schema": request.schema, "options": options}
            self.calls.append(call)
            return script(request.messages, request.schema, len(self.calls))

        super().__init__(answer, model_id)


class Provider:
    """`get_<role>(settings)` for the roles given; every other role is missing."""

    def __init__(self, **models: Any) -> None:
        self.models = models

    def __getattr__(self, name: str):
        if not name.startswith("get_"):
            raise AttributeError(name)
        role = name[4:]

        def get(settings):
            model = self.models.get(role)
            if model is None:
                raise ModelMissingError(
                    f"{role} model is not on disk (test)", hint=f"get it with `pull {role}`"
                )
            return model

        return get


class CancelAfter:
    """A progress reporter that cancels the run after `n` advances (batch boundaries)."""

    def __init__(self, token, n: int = 1) -> None:
        self.token, self.n, self.done = token, n, 0

    def start(self, description: str, total: int | None) -> None:
        pass

    def advance(self, amount: int = 1) -> None:
        self.done += 1
        if self.done >= self.n:
            self.token.cancel()

    def log(self, message: str) -> None:
        pass
