"""The small LLM interface the pipeline uses, and one call with its cost and failure mode.

Anything with `generate_json(messages, schema, **options) -> parsed JSON` is an LLM here
(the model layer's llama.cpp wrapper, or a fake in tests). Parsing failures raise
`GenerationError`; the raw text, when the error carries it, goes to quarantine.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from typing import Any, Protocol

from microvqa_tui.errors import GenerationError, ModelMissingError


class JsonLLM(Protocol):
    def generate_json(self, messages: list[dict[str, str]], schema: dict, **options: Any) -> Any:
        """The model's reply parsed as JSON (strict); raises GenerationError when it is not."""


@dataclass
class Generation:
    output: Any = None  # the parsed JSON; None when the call failed
    raw: str = ""  # the model's text, when known
    tokens: int = 0  # completion tokens (estimated from the text when not reported)
    seconds: float = 0.0
    error: str = ""  # "" | "unparsable" | "failed"
    message: str = ""


def model_id(llm: Any, fallback: str = "") -> str:
    """A stable name of the model behind `llm` (stored with every output)."""
    for attr in ("model_id", "name", "model_name", "id"):
        value = getattr(llm, attr, None)
        if isinstance(value, str) and value:
            return value
    return fallback or type(llm).__name__


def _accepted(function: Any, options: dict[str, Any]) -> dict[str, Any]:
    try:
        params = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return options
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return options
    return {k: v for k, v in options.items() if k in params}


def _text_of(value: Any) -> str:
    for attr in ("raw", "text", "output", "content", "payload"):
        text = getattr(value, attr, None)
        if isinstance(text, str) and text:
            return text
    return ""


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


def generate(
    llm: JsonLLM, messages: list[dict[str, str]], schema: dict, **options: Any
) -> Generation:
    """One structured call; never raises for a bad generation (only for a missing model)."""
    start = time.perf_counter()
    kwargs = _accepted(llm.generate_json, {k: v for k, v in options.items() if v is not None})
    try:
        result = llm.generate_json(messages, schema, **kwargs)
    except ModelMissingError:
        raise
    except GenerationError as exc:
        raw = _text_of(exc)
        return Generation(
            raw=raw,
            tokens=int(getattr(exc, "tokens", 0) or _estimate_tokens(raw)),
            seconds=time.perf_counter() - start,
            error="unparsable",
            message=f"{exc}" + (f" [{exc.reason}]" if getattr(exc, "reason", "") else ""),
        )
    except Exception as exc:  # a model runtime failure is a failed generation, not a crash
        return Generation(
            seconds=time.perf_counter() - start,
            error="failed",
            message=f"{type(exc).__name__}: {exc}",
        )
    output, raw, tokens = _unpack(result)
    return Generation(
        output=output,
        raw=raw,
        tokens=tokens,
        seconds=time.perf_counter() - start,
    )


def _unpack(result: Any) -> tuple[Any, str, int]:
    """(parsed JSON, raw text, completion tokens) from whatever `generate_json` returned."""
    import json

    if isinstance(result, (dict, list, str, int, float, bool)) or result is None:
        raw = json.dumps(result, ensure_ascii=False)
        return result, raw, _estimate_tokens(raw)
    output = None
    for attr in ("data", "value", "parsed", "json", "output"):
        if hasattr(result, attr) and not callable(getattr(result, attr)):
            output = getattr(result, attr)
            break
    raw = _text_of(result) or json.dumps(output, ensure_ascii=False, default=str)
    tokens = 0
    usage = getattr(result, "usage", None)
    if isinstance(usage, dict):
        tokens = int(usage.get("completion_tokens") or 0)
    tokens = tokens or int(getattr(result, "completion_tokens", 0) or 0)
    tokens = tokens or int(getattr(result, "tokens", 0) or 0)
    return output, raw, tokens or _estimate_tokens(raw)
