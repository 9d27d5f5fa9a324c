"""One LLM client for every stage: one typed request in, one typed result out, metered.

    client = registry.get_llm(settings)              # in-process GGUF, or a server
    result = client.ask(LLMRequest(messages, schema, sampling=Sampling(seed=3)))
    result.value      # the parsed JSON (strict json.loads accepts `raw`); None on error
    result.error      # "" | "unparsable" | "timeout" | "failed"; `message` says why
    for index, result in client.ask_many(requests, cancel=token): ...

`ask` never raises for a bad generation: a model-side failure on one item is a result with
its error, so a step quarantines that item and goes on. Only a missing model
(`ModelMissingError`) and a cancel (`Cancelled`) propagate. Backends implement `_generate`;
the base class owns the metering (calls, tokens, model seconds, by purpose) and the
concurrency (`in_flight` requests at once: 1 for an in-process model, more for a server).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any

from microvqa_tui.errors import Cancelled, GenerationError, ModelMissingError

UNPARSABLE = "unparsable"  # the model answered, but not with the JSON asked for
FAILED = "failed"  # the model (or the server) did not answer
# The call's time limit passed first: a fact of the machine's load, not of the item, so a
# step records it but does not count it against the item's attempts.
TIMEOUT = "timeout"
TIMEOUT_HINT = (
    "the timed-out items stay pending: re-run on a less busy machine, or raise the timeout "
    "(MICROVQA_MODELS__LLM_TIMEOUT_S; a server: MICROVQA_MODELS__SERVER__TIMEOUT_S)"
)


@dataclass(frozen=True)
class Sampling:
    """How to sample. `repeat_penalty` is passed where the backend knows it."""

    temperature: float = 0.0
    max_tokens: int = 256
    seed: int = 0
    repeat_penalty: float | None = None


@dataclass(frozen=True)
class LLMRequest:
    """One call: chat messages, the JSON schema of the reply (None = free text), images
    (bytes, shown with the last user message), sampling, and what the call is for (meter)."""

    messages: Sequence[Mapping[str, Any]]
    schema: Mapping[str, Any] | None = None
    images: tuple[bytes | str, ...] = ()  # bytes, a file path or a data: URI
    sampling: Sampling = Sampling()
    purpose: str = ""
    timeout_s: float | None = None  # None: the client's own
    retries: int | None = None  # incomplete JSON retried with the next seed; None: client's

    @classmethod
    def of(
        cls,
        messages: Sequence[Mapping[str, Any]],
        schema: Mapping[str, Any] | None,
        *,
        purpose: str = "",
        temperature: float = 0.0,
        seed: int = 0,
        max_tokens: int = 256,
        images: Sequence[bytes | str] | None = None,
        repeat_penalty: float | None = None,
        retries: int | None = None,
    ) -> LLMRequest:
        """A request from flat keywords (the sampling fields beside the rest)."""
        sampling = Sampling(temperature, max_tokens, seed, repeat_penalty)
        return cls(messages, schema, tuple(images or ()), sampling, purpose, retries=retries)


@dataclass
class JsonResult:
    """A reply: the parsed value (the text itself for a free-text request), the raw text,
    its cost, and the error when there is one."""

    value: Any = None
    raw: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    error: str = ""  # "" | UNPARSABLE | TIMEOUT | FAILED
    message: str = ""
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Meter:
    """What a client's calls cost, summed (thread-safe through the client's lock)."""

    calls: int = 0
    failed_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_seconds: float = 0.0
    by_purpose: dict[str, int] = field(default_factory=dict)
    timed_out_calls: int = 0  # of the failed calls, those whose time limit passed

    def add(self, result: JsonResult, purpose: str) -> None:
        self.calls += 1
        self.failed_calls += bool(result.error)
        self.timed_out_calls += result.error == TIMEOUT
        self.prompt_tokens += result.prompt_tokens
        self.completion_tokens += result.completion_tokens
        self.model_seconds += result.seconds
        if purpose:
            self.by_purpose[purpose] = self.by_purpose.get(purpose, 0) + 1

    def merge(self, other: Meter) -> None:
        """Add `other`'s calls to these (a worker's or one item's share of a run)."""
        self.calls += other.calls
        self.failed_calls += other.failed_calls
        self.timed_out_calls += other.timed_out_calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.model_seconds += other.model_seconds
        for purpose, n in other.by_purpose.items():
            self.by_purpose[purpose] = self.by_purpose.get(purpose, 0) + n

    def copy(self) -> Meter:
        return replace(self, by_purpose=dict(self.by_purpose))

    def since(self, start: Meter) -> Meter:
        """The calls made after `start` (a `copy()` taken earlier): one run's share."""
        purposes = {
            k: n - start.by_purpose.get(k, 0)
            for k, n in self.by_purpose.items()
            if n > start.by_purpose.get(k, 0)
        }
        return Meter(
            self.calls - start.calls,
            self.failed_calls - start.failed_calls,
            self.prompt_tokens - start.prompt_tokens,
            self.completion_tokens - start.completion_tokens,
            self.model_seconds - start.model_seconds,
            purposes,
            self.timed_out_calls - start.timed_out_calls,
        )

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.model_seconds if self.model_seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "failed_calls": self.failed_calls,
            "timed_out_calls": self.timed_out_calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "model_seconds": round(self.model_seconds, 3),
            "calls_by_purpose": dict(self.by_purpose),
        }


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def strict_loads(text: str) -> Any:
    """`json.loads` in strict mode, also refusing NaN/Infinity (not JSON)."""
    return json.loads(text, parse_constant=_reject_constant)


def parsed(raw: str, request: LLMRequest, **cost: Any) -> JsonResult:
    """The result for `raw` text: parsed strictly when the request asked for JSON."""
    if request.schema is None:
        return JsonResult(value=raw, raw=raw, **cost)
    try:
        return JsonResult(value=strict_loads(raw), raw=raw, **cost)
    except ValueError as exc:
        return JsonResult(raw=raw, error=UNPARSABLE, message=f"not valid JSON ({exc})", **cost)


class LLMClient:
    """Base of every backend. Subclasses set `model_id`, `vision`, `in_flight`, `device`
    and implement `_generate(request) -> JsonResult` (which may raise for a runtime
    failure: `ask` turns that into a FAILED result)."""

    model_id: str = "llm"
    vision: bool = False
    in_flight: int = 1
    device: str = "cpu"
    backend: str = ""

    def __init__(self) -> None:
        self.meter = Meter()
        self._meter_lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.model_id

    def _generate(self, request: LLMRequest) -> JsonResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def ask(self, request: LLMRequest) -> JsonResult:
        """One call, metered; never raises for a bad or failed generation."""
        start = time.perf_counter()
        try:
            result = self._generate(request)
        except (ModelMissingError, Cancelled):
            raise
        except GenerationError as exc:
            raw = str(getattr(exc, "raw", "") or "")
            result = JsonResult(raw=raw, error=UNPARSABLE, message=str(exc))
        except Exception as exc:  # a runtime failure of one call is a failed generation
            result = JsonResult(error=FAILED, message=f"{type(exc).__name__}: {exc}")
        if not result.seconds:
            result.seconds = time.perf_counter() - start
        with self._meter_lock:
            self.meter.add(result, request.purpose)
        return result

    def ask_many(
        self, requests: Iterable[LLMRequest], *, cancel: Any = None
    ) -> Iterator[tuple[int, JsonResult]]:
        """(index, result) for each request as it finishes, `in_flight` at a time.

        Stops submitting when `cancel` (a CancelToken) is cancelled; calls in flight finish.
        """
        yield from run_concurrently(self.ask, requests, self.in_flight, cancel=cancel)

    def ask_all(self, requests: Iterable[LLMRequest], *, cancel: Any = None) -> list[JsonResult]:
        """Every result, in request order (the calls themselves run concurrently)."""
        out: dict[int, JsonResult] = dict(self.ask_many(requests, cancel=cancel))
        if cancel is not None:
            cancel.check()
        return [out[i] for i in range(len(out))]

    def close(self) -> None:
        """Free what the backend holds (a loaded model, a connection pool)."""

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_concurrently(
    function: Any, items: Iterable[Any], in_flight: int, *, cancel: Any = None
) -> Iterator[tuple[int, Any]]:
    """(index, function(item)) as each finishes, at most `in_flight` running at once.

    With `in_flight` 1 everything runs in the calling thread, in order.
    """
    stopped = (lambda: False) if cancel is None else (lambda: bool(cancel.cancelled))
    if in_flight <= 1:
        for index, item in enumerate(items):
            if stopped():
                return
            yield index, function(item)
        return
    with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="llm") as pool:
        pending: dict[Future, int] = {}
        iterator = iter(enumerate(items))
        exhausted = False
        while pending or not exhausted:
            while not exhausted and len(pending) < in_flight and not stopped():
                nxt = next(iterator, None)
                if nxt is None:
                    exhausted = True
                    break
                pending[pool.submit(function, nxt[1])] = nxt[0]
            if stopped():
                exhausted = True
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield pending.pop(future), future.result()


class ScriptedClient(LLMClient):
    """A client whose replies come from `reply(request)`: a JSON value, the raw text (parsed
    strictly, as a model's), a JsonResult as it is (a timeout, say), or an exception to
    raise. For tests and dry runs; every request is kept in `requests`."""

    backend = "scripted"

    def __init__(self, reply: Any, model_id: str = "scripted", *, in_flight: int = 1) -> None:
        super().__init__()
        self.reply = reply
        self.model_id = model_id
        self.in_flight = in_flight
        self.requests: list[LLMRequest] = []
        self._lock = threading.Lock()

    def _generate(self, request: LLMRequest) -> JsonResult:
        with self._lock:
            self.requests.append(request)
        out = self.reply(request)
        if isinstance(out, BaseException):
            raise out
        if isinstance(out, JsonResult):
            return out
        if isinstance(out, str):
            return parsed(out, request)
        return JsonResult(value=out, raw=json.dumps(out, ensure_ascii=False, default=str))


class NoModel(LLMClient):
    """Stands in when a run needs no model call (nothing to do, or every model check off)."""

    model_id = "none"
    backend = "none"

    def _generate(self, request: LLMRequest) -> JsonResult:
        from microvqa_tui.errors import PipelineError

        raise PipelineError("this run has no model configured")
