"""GGUF language models (text and vision) in-process through llama-cpp-python.

    llm = load_llm(path)                       # or registry.get_llm(settings)
    result = llm.ask(LLMRequest(messages, schema, sampling=Sampling(max_tokens=512)))

`LlamaModel` is the in-process backend of the LLM client (`client.py`). JSON output is
constrained by llguidance token masks built from the schema (`constrain.py`), so strict
`json.loads` accepts every complete output; a schema llguidance cannot compile falls back
to a GBNF grammar. An output can still be incomplete (token limit, timeout): such a call is
retried with the next seed up to `retries` times and then returned as an UNPARSABLE result
carrying the raw text (a TIMEOUT result when the time limit cut it).

Vision models take a multimodal projector (mmproj) and llama-cpp-python's multimodal chat
handlers; images are passed as bytes and sent as data URIs. `llama_cpp` is imported when a
model is loaded, never at module import.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from microvqa_tui.errors import GenerationError, ModelError, ModelMissingError
from microvqa_tui.models.client import (
    TIMEOUT,
    JsonResult,
    LLMClient,
    LLMRequest,
    Sampling,
    parsed,
)
from microvqa_tui.models.constrain import (
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_STRING,
    Compiled,
    TokenMasks,
    compile_schema,
    gbnf_grammar,
)
from microvqa_tui.models.decode import Decoder, DecodeStats
from microvqa_tui.models.device import llama_threads
from microvqa_tui.models.messages import image_data_uri, prepare_messages

__all__ = ["LlamaModel", "gpu_offload_supported", "image_data_uri", "load_llm"]

_log = logging.getLogger(__name__)

#: Vision chat handlers by name (llama_cpp.llama_chat_format class names). "auto" picks the
#: generic MTMD handler (chat template from the GGUF) or guesses from the file name.
VISION_HANDLERS = {
    "mtmd": "MTMDChatHandler",
    "qwen2.5-vl": "Qwen25VLChatHandler",
    "llava-1.5": "Llava15ChatHandler",
    "llava-1.6": "Llava16ChatHandler",
    "minicpm-v-2.6": "MiniCPMv26ChatHandler",
    "moondream": "MoondreamChatHandler",
    "nanollava": "NanoLlavaChatHandler",
    "llama3-vision-alpha": "Llama3VisionAlphaChatHandler",
    "gemma4": "Gemma4ChatHandler",
}

_RETRY_TEMPERATURE = 0.3  # a greedy (temperature 0) call is retried with this temperature


@dataclass
class CallStats:
    """One llama.cpp completion."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    finish_reason: str = ""
    timed_out: bool = False
    decoded: DecodeStats | None = None  # the decode loop's phases (text models)


# ---------------------------------------------------------------------------- llama.cpp glue
def gpu_offload_supported() -> bool:
    """Whether the installed llama.cpp build can offload layers to a GPU."""
    try:
        import llama_cpp

        return bool(llama_cpp.llama_supports_gpu_offload())
    except Exception:
        return False


def _vision_handler(name: str, mmproj: Path, model_path: Path, *, use_gpu: bool) -> Any:
    from llama_cpp import llama_chat_format as fmt

    key = (name or "auto").lower()
    if key == "auto":
        lower = model_path.name.lower()
        if "qwen2.5-vl" in lower or "qwen2_5_vl" in lower or "qwen25vl" in lower:
            key = "qwen2.5-vl"
        elif "llava-v1.6" in lower or "llava-1.6" in lower:
            key = "llava-1.6"
        elif "llava" in lower:
            key = "llava-1.5"
        elif "minicpm" in lower:
            key = "minicpm-v-2.6"
        elif "moondream" in lower:
            key = "moondream"
        else:
            key = "mtmd"
    class_name = VISION_HANDLERS.get(key, key)
    handler_cls = getattr(fmt, class_name, None)
    if handler_cls is None:
        known = ", ".join(sorted(VISION_HANDLERS))
        raise ModelError(
            f"llama-cpp-python has no vision chat handler '{name}'",
            hint=f"use one of: auto, {known}",
        )
    try:
        if class_name == "MTMDChatHandler" or issubclass(handler_cls, fmt.MTMDChatHandler):
            return handler_cls(clip_model_path=str(mmproj), verbose=False, use_gpu=use_gpu)
        return handler_cls(clip_model_path=str(mmproj), verbose=False)
    except Exception as exc:
        raise ModelError(f"cannot load the multimodal projector {mmproj}: {exc}") from exc


class _Deadline:
    """llama-cpp-python stopping criterion: stop when the wall-clock deadline has passed."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.hit = False

    def __call__(self, input_ids: Any, logits: Any) -> bool:
        if time.monotonic() >= self.deadline:
            self.hit = True
            return True
        return False


@contextlib.contextmanager
def _stopping(llama: Any, criterion: Any) -> Iterator[None]:
    """Add `criterion` to every `create_completion` the chat handler makes during the block.

    Chat handlers (text templates and multimodal ones alike) end in
    `llama.create_completion(...)`, but `create_chat_completion` takes no stopping criteria;
    an instance attribute shadows the method for the duration of one call.
    """
    from llama_cpp import StoppingCriteriaList

    original = llama.create_completion

    def create_completion(*args: Any, stopping_criteria: Any = None, **kwargs: Any) -> Any:
        criteria = StoppingCriteriaList([criterion, *(stopping_criteria or [])])
        return original(*args, stopping_criteria=criteria, **kwargs)

    llama.create_completion = create_completion
    try:
        yield
    finally:
        with contextlib.suppress(AttributeError):
            del llama.create_completion


# ---------------------------------------------------------------------------- the model
class LlamaModel(LLMClient):
    """A loaded GGUF model behind the LLM client. Calls are serialised (a llama.cpp context
    is not thread-safe), so `in_flight` is 1."""

    backend = "in-process"

    def __init__(
        self,
        llama: Any,
        *,
        model_id: str,
        path: Path,
        mmproj: Path | None = None,
        n_gpu_layers: int = 0,
        top_p: float = 0.95,
        top_k: int = 40,
        timeout_s: float = 120.0,
        retries: int = 2,
        max_string_length: int = DEFAULT_MAX_STRING,
        max_items: int = DEFAULT_MAX_ITEMS,
        prompt_cache_bytes: int = 0,
    ) -> None:
        super().__init__()
        self.llama = llama
        self.model_id = model_id
        self.path = path
        self.mmproj = mmproj
        self.vision = mmproj is not None
        self.n_gpu_layers = n_gpu_layers
        self.top_p = top_p
        self.top_k = top_k
        self.timeout_s = timeout_s
        self.retries = retries
        self.max_string_length = max_string_length
        self.max_items = max_items
        self.fallbacks: dict[str, str] = {}  # schema (JSON) -> why GBNF was used
        self.last_calls: list[CallStats] = []
        self._masks: TokenMasks | None = None
        self._lock = threading.Lock()
        # text models decode in our own loop (decode.py); vision models through their handler
        self.decoder = (
            None if self.vision else Decoder(llama, prompt_cache_bytes=prompt_cache_bytes)
        )

    # -- info
    @property
    def device(self) -> str:  # type: ignore[override]
        if not self.n_gpu_layers:
            return "cpu"
        return f"cuda ({'all' if self.n_gpu_layers < 0 else self.n_gpu_layers} layers)"

    @property
    def chat_template(self) -> str:
        return str(self.llama.metadata.get("tokenizer.chat_template", ""))

    def format_prompt(self, messages: Sequence[Mapping[str, Any]]) -> str:
        """The prompt text of text `messages` (the GGUF's chat template, rendered as
        llama-cpp-python renders it)."""
        return self._text_decoder().prompt_text([dict(m) for m in messages], self.chat_template)

    def prompt_tokens(self, messages: Sequence[Mapping[str, Any]]) -> Any:
        """The prompt of text `messages` as tokens (a numpy array)."""
        return self._text_decoder().prompt_tokens([dict(m) for m in messages], self.chat_template)

    def _text_decoder(self) -> Decoder:
        if not self.chat_template or self.decoder is None:
            raise ModelError(f"{self.model_id} has no chat template in its GGUF metadata")
        return self.decoder

    # -- constraint
    def compiled(self, schema: Mapping[str, Any] | None) -> Compiled | None:
        """The schema's constraint (cached); a GBNF fallback is logged once per schema."""
        if schema is None:
            return None
        compiled = compile_schema(
            schema, max_string=self.max_string_length, max_items=self.max_items
        )
        if compiled.kind == "gbnf":
            key = json.dumps(schema, sort_keys=True)
            if key not in self.fallbacks:
                self.fallbacks[key] = compiled.note
                _log.warning("%s: %s", self.model_id, compiled.note)
        return compiled

    def constraint(self, schema: Mapping[str, Any] | None) -> tuple[Any, Any]:
        """(logits processor, GBNF grammar) for one chat-handler call; both None without a
        schema."""
        compiled = self.compiled(schema)
        if compiled is None:
            return None, None
        if compiled.kind == "gbnf":
            return None, gbnf_grammar(compiled.grammar)
        return self.masks.processor(compiled.grammar), None

    @property
    def masks(self) -> TokenMasks:
        if self._masks is None:
            self._masks = TokenMasks(self.llama)  # once per loaded model
        return self._masks

    def _decode(
        self, messages: list[dict[str, Any]], matcher: Any, *, deadline: float, options: dict
    ) -> tuple[str, CallStats]:
        """One call through the decode loop (text models)."""
        assert self.decoder is not None
        start = time.perf_counter()
        prompt = self.prompt_tokens(messages)
        if len(prompt) >= self.llama.n_ctx():
            raise ModelError(
                f"{self.model_id} failed: the prompt has {len(prompt)} tokens, the context "
                f"{self.llama.n_ctx()}",
                hint="a longer context needs MICROVQA_MODELS__LLM_CONTEXT=<tokens>",
            )
        bitmask = None if matcher is None else self.masks.bitmask
        tokens, decoded = self.decoder.run(prompt, matcher, bitmask, options, deadline)
        stats = CallStats(
            len(prompt),
            decoded.completion_tokens,
            time.perf_counter() - start,
            decoded.finish_reason,
            decoded.finish_reason == "timeout",
            decoded,
        )
        return self.decoder.text(tokens), stats

    # -- generation
    def _complete(
        self,
        messages: list[dict[str, Any]],
        *,
        constraint: tuple[Any, Any],
        deadline: float,
        options: dict[str, Any],
    ) -> tuple[str, CallStats]:
        processor, grammar = constraint
        criterion = _Deadline(deadline)
        start = time.perf_counter()
        try:
            with _stopping(self.llama, criterion):
                response = self.llama.create_chat_completion(
                    messages=messages,
                    grammar=grammar,
                    logits_processor=[processor] if processor is not None else None,
                    stream=False,
                    **options,
                )
        except ValueError as exc:  # prompt longer than the context, bad template, ...
            raise ModelError(
                f"{self.model_id} failed: {exc}",
                hint="a longer context needs MICROVQA_MODELS__LLM_CONTEXT=<tokens>",
            ) from exc
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        reason = "timeout" if criterion.hit else str(choice.get("finish_reason") or "")
        if processor is not None and processor.error:
            raise GenerationError(f"{self.model_id}: the token mask failed: {processor.error}")
        stats = CallStats(
            int(usage.get("prompt_tokens", 0)),
            int(usage.get("completion_tokens", 0)),
            time.perf_counter() - start,
            reason,
            criterion.hit,
        )
        return choice["message"].get("content") or "", stats

    def _options(self, sampling: Sampling, attempt: int) -> dict[str, Any]:
        temperature = sampling.temperature
        if attempt and not temperature:
            temperature = _RETRY_TEMPERATURE  # a greedy retry would repeat itself
        options = {
            "temperature": temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "max_tokens": sampling.max_tokens,
            "seed": int(sampling.seed) + attempt,
        }
        if sampling.repeat_penalty is not None:
            options["repeat_penalty"] = sampling.repeat_penalty
        return options

    def _attempt(
        self, messages: list[dict[str, Any]], request: LLMRequest, attempt: int, deadline: float
    ) -> tuple[str, CallStats]:
        """One generation: the decode loop for a text model with a token mask (or free
        text), the chat handler for a vision model or a GBNF fallback."""
        options = self._options(request.sampling, attempt)
        compiled = self.compiled(request.schema)
        if self.decoder is not None and (compiled is None or compiled.kind == "llguidance"):
            matcher = None if compiled is None else self.masks.matcher(compiled.grammar)
            return self._decode(messages, matcher, deadline=deadline, options=options)
        constraint = self.constraint(request.schema)
        return self._complete(messages, constraint=constraint, deadline=deadline, options=options)

    def _generate(self, request: LLMRequest) -> JsonResult:
        """One request; incomplete JSON is retried with the next seed (temperature 0 becomes
        0.3) up to `retries` times, within one `timeout_s` for all attempts."""
        prepared, n_images = prepare_messages(request.messages, request.images)
        if n_images and not self.vision:
            raise ModelError(
                f"{self.model_id} is a text model and cannot read images",
                hint="configure a vision model: MICROVQA_MODELS__VLM and "
                "MICROVQA_MODELS__VLM_MMPROJ",
            )
        retries = self.retries if request.retries is None else max(0, int(request.retries))
        timeout = float(request.timeout_s or self.timeout_s)
        deadline = time.monotonic() + timeout
        calls: list[CallStats] = []
        result = JsonResult()
        with self._lock:
            for attempt in range(retries + 1):
                raw, stats = self._attempt(prepared, request, attempt, deadline)
                calls.append(stats)
                result = parsed(
                    raw,
                    request,
                    prompt_tokens=sum(c.prompt_tokens for c in calls),
                    completion_tokens=sum(c.completion_tokens for c in calls),
                    seconds=sum(c.seconds for c in calls),
                    attempts=len(calls),
                )
                if result.ok or stats.timed_out or time.monotonic() >= deadline:
                    break
            self.last_calls = calls  # the attempts' phases, for benchmarks
        if not result.ok:
            result.message = _why_incomplete(self.model_id, calls, timeout, request, result)
            if calls[-1].timed_out:
                result.error = TIMEOUT
        return result

    def close(self) -> None:
        llama, self.llama = self.llama, None
        if llama is not None:
            with contextlib.suppress(Exception):
                llama.close()


def _why_incomplete(
    model_id: str, calls: list[CallStats], timeout: float, request: LLMRequest, result: JsonResult
) -> str:
    last = calls[-1]
    if last.timed_out:
        why = f"the {timeout:g} s timeout passed before the JSON was complete [timeout]"
    elif last.finish_reason == "length":
        why = (
            f"the output reached max_tokens={request.sampling.max_tokens} before the JSON "
            "was complete [length]"
        )
    else:
        why = f"{result.message} [invalid]"
    return f"{model_id}: no parsable JSON after {len(calls)} attempt(s): {why}"


def load_llm(
    path: str | Path,
    *,
    mmproj: str | Path | None = None,
    chat_handler: str = "auto",
    model_id: str | None = None,
    n_ctx: int = 4096,
    n_gpu_layers: int = -1,
    use_gpu: bool = True,
    n_threads: int | None = None,
    n_threads_batch: int | None = None,
    n_batch: int = 512,
    prompt_cache_bytes: int = 1 << 30,
    seed: int = 0,
    timeout_s: float = 120.0,
    retries: int = 2,
    **defaults: Any,
) -> LlamaModel:
    """Load a GGUF model (and its multimodal projector for a vision model).

    Layers are offloaded to the GPU (`n_gpu_layers`, -1 = all) when `use_gpu` and the
    llama.cpp build supports offload; otherwise everything runs on the CPU. Text models get a
    RAM prompt cache (`prompt_cache_bytes`, 0 = none) so repeated system prompts are not
    evaluated again when calls alternate between prompts.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelMissingError(f"GGUF model file not found: {path}")
    mmproj_path = Path(mmproj) if mmproj else None
    if mmproj_path is not None and not mmproj_path.is_file():
        raise ModelMissingError(f"multimodal projector file not found: {mmproj_path}")
    import llama_cpp

    offload = use_gpu and gpu_offload_supported()
    layers = n_gpu_layers if offload else 0
    handler = (
        _vision_handler(chat_handler, mmproj_path, path, use_gpu=offload)
        if mmproj_path is not None
        else None
    )
    threads = n_threads or llama_threads()
    try:
        llama = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_batch=min(n_batch, n_ctx),
            n_gpu_layers=layers,
            n_threads=threads,
            n_threads_batch=n_threads_batch or max(threads, llama_threads()),
            seed=seed,
            chat_handler=handler,
            verbose=False,
        )
    except Exception as exc:
        raise ModelError(f"llama.cpp cannot load {path}: {exc}") from exc
    if handler is None and not llama.metadata.get("tokenizer.chat_template"):
        # llama-cpp-python then falls back to a guessed format; say so rather than guess
        llama.close()
        raise ModelError(
            f"{path.name} has no chat template in its GGUF metadata (tokenizer.chat_template)",
            hint="use an instruct/chat GGUF that embeds its template",
        )
    if handler is None and "chat_template.default" in llama._chat_handlers:
        llama.chat_format = "chat_template.default"  # the GGUF's own template, not a guess
    return LlamaModel(
        llama,
        model_id=model_id or path.name,
        path=path,
        mmproj=mmproj_path,
        n_gpu_layers=layers,
        timeout_s=timeout_s,
        retries=retries,
        prompt_cache_bytes=prompt_cache_bytes if handler is None else 0,
        **defaults,
    )
