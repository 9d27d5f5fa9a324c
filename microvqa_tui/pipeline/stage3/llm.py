"""The small LLM interface stage 3 and selection use, metered.

Anything with `generate_json(messages, schema, **options)` is an LLM here: the model
layer's llama.cpp wrapper, or a scripted fake in tests. `MeteredLLM.ask` makes one call
and never raises for a bad generation (only for a missing model): it returns an `LLMReply`
with the parsed JSON (or the error and the raw text for quarantine), the token counts and
the seconds spent inside the model, so a step can report its throughput and the share of
its time spent outside the model.
"""

from __future__ import annotations

import inspect
import json
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from microvqa_tui.errors import Cancelled, GenerationError, ModelMissingError


class JsonLLM(Protocol):
    def generate_json(self, messages: list[dict[str, str]], schema: dict, **options: Any) -> Any:
        """The reply parsed as JSON (strict); raises GenerationError when it is not JSON."""


@dataclass
class LLMReply:
    data: Any = None  # parsed JSON; None when the call failed
    raw: str = ""  # the model's text (or its JSON re-serialised), for quarantine
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    error: str = ""  # "" | "unparsable" | "failed"
    message: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.data is not None


@dataclass
class Meter:
    """What the calls cost, summed."""

    calls: int = 0
    failed_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_seconds: float = 0.0
    by_purpose: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "failed_calls": self.failed_calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "model_seconds": round(self.model_seconds, 3),
            "calls_by_purpose": dict(self.by_purpose),
        }


def model_id(llm: Any, fallback: str = "") -> str:
    """A stable name of the model behind `llm` (stored with every output)."""
    for attr in ("model_id", "name", "model_name", "id"):
        value = getattr(llm, attr, None)
        if isinstance(value, str) and value:
            return value
    return fallback or type(llm).__name__


def _accepted(function: Any, options: dict[str, Any]) -> dict[str, Any]:
    """Only the options `function` takes (a wrapper may not know `seed`, say)."""
    try:
        params = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return options
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return options
    return {k: v for k, v in options.items() if k in params}


def _first_attr(value: Any, names: tuple[str, ...], kind: type | tuple[type, ...]) -> Any:
    for name in names:
        attr = getattr(value, name, None)
        if isinstance(attr, kind) and not callable(attr):
            return attr
    return None


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


def unpack(result: Any) -> tuple[Any, str, int, int]:
    """(parsed JSON, raw text, prompt tokens, completion tokens) of a `generate_json` result.

    Plain JSON values pass through; an object is read for `data`/`value`/`parsed`,
    `raw`/`text`, and token counts (`usage` dict or `*_tokens` attributes).
    """
    if isinstance(result, (dict, list, int, float, bool)) or result is None:
        raw = json.dumps(result, ensure_ascii=False)
        return result, raw, 0, _estimate_tokens(raw)
    if isinstance(result, str):  # a raw reply: parse it strictly
        return json.loads(result), result, 0, _estimate_tokens(result)
    data = None
    for name in ("data", "value", "parsed", "json", "output"):
        if hasattr(result, name) and not callable(getattr(result, name)):
            data = getattr(result, name)
            break
    raw = _first_attr(result, ("raw", "text", "content"), str) or json.dumps(
        data, ensure_ascii=False, default=str
    )
    usage = getattr(result, "usage", None)
    usage = usage if isinstance(usage, dict) else {}
    prompt = usage.get("prompt_tokens") or _first_attr(result, ("prompt_tokens",), int) or 0
    completion = (
        usage.get("completion_tokens")
        or _first_attr(result, ("completion_tokens", "tokens"), int)
        or _estimate_tokens(raw)
    )
    return data, raw, int(prompt), int(completion)


class MeteredLLM:
    """Wraps an LLM: one `ask` per call, with its cost added to `meter`."""

    def __init__(self, llm: JsonLLM, name: str = "") -> None:
        self.llm = llm
        self.name = name or model_id(llm)
        self.meter = Meter()

    def ask(
        self,
        messages: list[dict[str, str]],
        schema: dict,
        *,
        purpose: str,
        temperature: float = 0.0,
        seed: int = 0,
        max_tokens: int = 256,
        images: list[bytes] | None = None,
        **extra: Any,
    ) -> LLMReply:
        """One call; `extra` options (e.g. repeat_penalty) go to models that take them."""
        # retries=0: one ask is one model call; the steps retry themselves, with quarantine.
        options: dict[str, Any] = {
            "temperature": temperature,
            "seed": seed,
            "max_tokens": max_tokens,
            "retries": 0,
        }
        if images:
            options["images"] = images
        options.update({k: v for k, v in extra.items() if v is not None})
        kwargs = _accepted(self.llm.generate_json, options)
        self.meter.calls += 1
        self.meter.by_purpose[purpose] = self.meter.by_purpose.get(purpose, 0) + 1
        start = time.perf_counter()
        try:
            result = self.llm.generate_json(messages, schema, **kwargs)
            data, raw, prompt, completion = unpack(result)
            reply = LLMReply(data=data, raw=raw, prompt_tokens=prompt, completion_tokens=completion)
        except (ModelMissingError, Cancelled):
            raise
        except (GenerationError, json.JSONDecodeError) as exc:
            raw = _first_attr(exc, ("raw", "text", "output", "payload", "doc"), str) or ""
            tokens = _first_attr(exc, ("completion_tokens", "tokens"), int) or _estimate_tokens(raw)
            reply = LLMReply(
                raw=raw, completion_tokens=tokens, error="unparsable", message=str(exc)
            )
        except Exception as exc:  # a runtime failure of one call is a failed generation
            reply = LLMReply(error="failed", message=f"{type(exc).__name__}: {exc}")
        reply.seconds = time.perf_counter() - start
        self.meter.model_seconds += reply.seconds
        self.meter.prompt_tokens += reply.prompt_tokens
        self.meter.completion_tokens += reply.completion_tokens
        if reply.error:
            self.meter.failed_calls += 1
        return reply


class NoModel:
    """Stands in when a run needs no model call (nothing to do, or every model check off)."""

    name = "none"

    def generate_json(self, messages: list[dict[str, str]], schema: dict, **options: Any) -> Any:
        from microvqa_tui.errors import PipelineError

        raise PipelineError("this run has no model configured")


def resolve_llm(settings: Any, role: str = "llm") -> JsonLLM:
    """The configured model for `role` (llm | vlm) from the model registry.

    Raises ModelMissingError (with what to do) when the model is not on disk.
    """
    from microvqa_tui.models import registry

    getter = registry.get_vlm if role == "vlm" else registry.get_llm
    return getter(settings)
