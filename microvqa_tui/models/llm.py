"""GGUF language models (text and vision) through llama-cpp-python, with JSON output.

    llm = load_llm(path)                       # or registry.get_llm(settings)
    result = llm.generate_json(messages, schema, temperature=0.7, max_tokens=512)
    result.data        # the parsed object (strict json.loads always accepts it)
    result.raw         # the model's text
    result.completion_tokens, result.seconds, result.tokens_per_s

Output is constrained by a grammar built from the JSON schema (see `grammar.py`): strings
carry no raw control characters and are bounded, so strict `json.loads` accepts every
complete output. An output can still be incomplete (token limit, timeout); such a call is
retried with the next seed up to `retries` times and then raises `UnparsableOutputError`
(a `GenerationError`) carrying the raw text.

Vision models take a multimodal projector (mmproj) and llama-cpp-python's multimodal chat
handlers; images are passed as bytes and sent as data URIs. `llama_cpp` is imported when a
model is loaded, never at module import.
"""

from __future__ import annotations

import base64
import contextlib
import io
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from microvqa_tui.errors import GenerationError, ModelError, ModelMissingError
from microvqa_tui.models.device import llama_threads
from microvqa_tui.models.grammar import (
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_STRING,
    schema_to_gbnf,
    strict_loads,
)

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

#: Image formats llama.cpp's decoder (stb_image) reads; others are re-encoded as PNG.
_STB_FORMATS = {"JPEG", "PNG", "BMP", "GIF"}

_RETRY_TEMPERATURE = 0.3  # a greedy (temperature 0) call is retried with this temperature


@dataclass
class CallStats:
    """One llama.cpp completion."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    finish_reason: str = ""
    timed_out: bool = False

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Totals:
    """Running totals over every call of one model (for benchmarks and run reports)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    failures: int = 0

    def add(self, stats: CallStats) -> None:
        self.calls += 1
        self.prompt_tokens += stats.prompt_tokens
        self.completion_tokens += stats.completion_tokens
        self.seconds += stats.seconds

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0


@dataclass
class JsonResult:
    """A parsed structured generation with its cost."""

    data: Any
    raw: str
    model_id: str = ""
    attempts: int = 1
    calls: list[CallStats] = field(default_factory=list)

    @property
    def prompt_tokens(self) -> int:
        return sum(c.prompt_tokens for c in self.calls)

    @property
    def completion_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.calls)

    @property
    def tokens(self) -> int:
        return self.completion_tokens

    @property
    def seconds(self) -> float:
        return sum(c.seconds for c in self.calls)

    @property
    def tokens_per_s(self) -> float:
        s = self.seconds
        return self.completion_tokens / s if s > 0 else 0.0

    @property
    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


@dataclass
class ChatResult:
    """A free-text generation with its cost."""

    text: str
    stats: CallStats


class UnparsableOutputError(GenerationError):
    """No attempt produced output that parses as JSON. `raw` holds the last attempt's text,
    `reason` is 'timeout', 'length' (token limit reached) or 'invalid'."""

    def __init__(
        self,
        message: str,
        *,
        raw: str,
        reason: str,
        attempts: int,
        calls: list[CallStats],
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.raw = raw
        self.reason = reason
        self.attempts = attempts
        self.calls = calls
        self.tokens = sum(c.completion_tokens for c in calls)


# ---------------------------------------------------------------------------- images
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


# ---------------------------------------------------------------------------- llama.cpp glue
_CLASSES: dict[str, Any] = {}


def _llama_classes() -> tuple[Any, Any]:
    """(Llama subclass, prompt-cache class), built once llama_cpp is imported."""
    if not _CLASSES:
        import llama_cpp

        class CachingLlama(llama_cpp.Llama):
            """`save_state` without copying the logits buffer when it is unused.

            With logits_all=False llama-cpp-python never fills `scores` (sampling happens in
            llama.cpp), yet `save_state` copies n_batch x n_vocab floats (~100 MB for a 49k
            vocabulary) into every prompt-cache entry. One row is kept (it broadcasts back
            in `load_state`).
            """

            def save_state(self) -> Any:
                if self._logits_all:
                    return super().save_state()
                full = self.scores
                self.scores = full[:1]
                try:
                    return super().save_state()
                finally:
                    self.scores = full

        class PromptCache(llama_cpp.LlamaRAMCache):
            """LlamaRAMCache whose capacity also counts the arrays stored beside the KV state."""

            @property
            def cache_size(self) -> int:
                return sum(
                    s.llama_state_size + s.scores.nbytes + s.input_ids.nbytes
                    for s in self.cache_state.values()
                )

        _CLASSES["llama"] = CachingLlama
        _CLASSES["cache"] = PromptCache
    return _CLASSES["llama"], _CLASSES["cache"]


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
class LlamaModel:
    """A loaded GGUF model. Thread-safe (calls are serialised: llama.cpp contexts are not)."""

    def __init__(
        self,
        llama: Any,
        *,
        model_id: str,
        path: Path,
        mmproj: Path | None = None,
        n_gpu_layers: int = 0,
        seed: int = 0,
        temperature: float = 0.2,
        top_p: float = 0.95,
        top_k: int = 40,
        max_tokens: int = 1024,
        timeout_s: float = 120.0,
        retries: int = 2,
        max_string_length: int = DEFAULT_MAX_STRING,
        max_items: int = DEFAULT_MAX_ITEMS,
    ) -> None:
        self.llama = llama
        self.model_id = model_id
        self.path = path
        self.mmproj = mmproj
        self.n_gpu_layers = n_gpu_layers
        self.seed = seed
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        self.retries = retries
        self.max_string_length = max_string_length
        self.max_items = max_items
        self.totals = Totals()
        self.last: JsonResult | ChatResult | None = None
        self._lock = threading.Lock()

    # -- info
    @property
    def vision(self) -> bool:
        return self.mmproj is not None

    @property
    def name(self) -> str:
        return self.model_id

    @property
    def device(self) -> str:
        if not self.n_gpu_layers:
            return "cpu"
        return f"cuda ({'all' if self.n_gpu_layers < 0 else self.n_gpu_layers} layers)"

    @property
    def chat_template(self) -> str:
        return str(self.llama.metadata.get("tokenizer.chat_template", ""))

    def format_prompt(self, messages: Sequence[Mapping[str, Any]]) -> str:
        """The prompt text llama-cpp-python builds for text `messages` (GGUF chat template)."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self.chat_template
        if not template:
            raise ModelError(f"{self.model_id} has no chat template in its GGUF metadata")
        llama = self.llama
        formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=llama._model.token_get_text(llama.token_eos()),
            bos_token=llama._model.token_get_text(llama.token_bos()),
        )
        return formatter(messages=[dict(m) for m in messages]).prompt

    # -- generation
    def _options(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        opts = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
        }
        opts.update({k: v for k, v in overrides.items() if v is not None})
        return opts

    def _complete(
        self,
        messages: list[dict[str, Any]],
        *,
        grammar: Any,
        deadline: float,
        options: dict[str, Any],
    ) -> tuple[str, CallStats]:
        criterion = _Deadline(deadline)
        start = time.perf_counter()
        try:
            with _stopping(self.llama, criterion):
                response = self.llama.create_chat_completion(
                    messages=messages, grammar=grammar, stream=False, **options
                )
        except ValueError as exc:  # prompt longer than the context, bad template, ...
            raise ModelError(
                f"{self.model_id} failed: {exc}",
                hint="a longer context needs MICROVQA_MODELS__LLM_CONTEXT=<tokens>",
            ) from exc
        seconds = time.perf_counter() - start
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        stats = CallStats(
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            seconds=seconds,
            finish_reason="timeout" if criterion.hit else str(choice.get("finish_reason") or ""),
            timed_out=criterion.hit,
        )
        self.totals.add(stats)
        return choice["message"].get("content") or "", stats

    def _check_images(self, n_images: int) -> None:
        if n_images and not self.vision:
            raise ModelError(
                f"{self.model_id} is a text model and cannot read images",
                hint="configure a vision model: MICROVQA_MODELS__VLM and MICROVQA_MODELS__VLM_MMPROJ",
            )

    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        images: Sequence[bytes | str | Path] = (),
        timeout_s: float | None = None,
        grammar: str | None = None,
        **options: Any,
    ) -> ChatResult:
        """Free-text generation (optionally constrained by a GBNF `grammar`)."""
        from llama_cpp import LlamaGrammar

        prepared, n_images = prepare_messages(messages, images)
        self._check_images(n_images)
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        compiled = LlamaGrammar.from_string(grammar, verbose=False) if grammar else None
        with self._lock:
            text, stats = self._complete(
                prepared, grammar=compiled, deadline=deadline, options=self._options(options)
            )
        self.last = ChatResult(text=text, stats=stats)
        return self.last

    def generate_json(
        self,
        messages: Sequence[Mapping[str, Any]],
        schema: Mapping[str, Any],
        *,
        images: Sequence[bytes | str | Path] = (),
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        seed: int | None = None,
        max_tokens: int | None = None,
        timeout_s: float | None = None,
        retries: int | None = None,
        max_string_length: int | None = None,
        repeat_penalty: float | None = None,
        logit_bias: Mapping[int, float] | None = None,
    ) -> JsonResult:
        """The model's answer to `messages` as JSON following `schema`.

        `timeout_s` bounds the whole call (all attempts): generation stops when it passes.
        Incomplete output is retried (next seed; temperature 0 becomes 0.3) up to `retries`
        times; then `UnparsableOutputError` is raised with the raw text attached.
        """
        from llama_cpp import LlamaGrammar

        prepared, n_images = prepare_messages(messages, images)
        self._check_images(n_images)
        gbnf = schema_to_gbnf(
            dict(schema),
            max_string=max_string_length or self.max_string_length,
            max_items=self.max_items,
        )
        grammar = LlamaGrammar.from_string(gbnf, verbose=False)
        retries = self.retries if retries is None else max(0, int(retries))
        timeout = self.timeout_s if timeout_s is None else float(timeout_s)
        base = self._options(
            {
                "temperature": temperature,
                "top_p": top_p,
                "top_k": top_k,
                "seed": seed,
                "max_tokens": max_tokens,
                "repeat_penalty": repeat_penalty,
                "logit_bias": dict(logit_bias) if logit_bias else None,
            }
        )
        deadline = time.monotonic() + timeout
        calls: list[CallStats] = []
        raw, reason, detail = "", "invalid", ""
        with self._lock:
            for attempt in range(retries + 1):
                options = dict(base)
                options["seed"] = int(base["seed"]) + attempt
                if attempt and not options["temperature"]:
                    options["temperature"] = _RETRY_TEMPERATURE
                raw, stats = self._complete(
                    prepared, grammar=grammar, deadline=deadline, options=options
                )
                calls.append(stats)
                try:
                    data = strict_loads(raw)
                except ValueError as exc:
                    detail = str(exc)
                    reason = (
                        "timeout"
                        if stats.timed_out
                        else "length"
                        if stats.finish_reason == "length"
                        else "invalid"
                    )
                    if reason == "timeout" or time.monotonic() >= deadline:
                        reason = "timeout"
                        break
                    continue
                self.last = JsonResult(
                    data=data, raw=raw, model_id=self.model_id, attempts=attempt + 1, calls=calls
                )
                return self.last
        self.totals.failures += 1
        why = {
            "timeout": f"the {timeout:g} s timeout passed before the JSON was complete",
            "length": f"the output reached max_tokens={base['max_tokens']} before the JSON was complete",
            "invalid": f"the output is not valid JSON ({detail})",
        }[reason]
        hints = {
            "timeout": "raise MICROVQA_MODELS__LLM_TIMEOUT_S or lower max_tokens",
            "length": "raise max_tokens or lower the schema's maxLength/maxItems",
            "invalid": None,
        }
        raise UnparsableOutputError(
            f"{self.model_id}: no parsable JSON after {len(calls)} attempt(s): {why}",
            raw=raw,
            reason=reason,
            attempts=len(calls),
            calls=calls,
            hint=hints[reason],
        )

    # -- lifetime
    def close(self) -> None:
        llama, self.llama = self.llama, None
        if llama is not None:
            with contextlib.suppress(Exception):
                llama.close()

    def __enter__(self) -> LlamaModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
    llama_cls, cache_cls = _llama_classes()
    offload = use_gpu and gpu_offload_supported()
    layers = n_gpu_layers if offload else 0
    handler = (
        _vision_handler(chat_handler, mmproj_path, path, use_gpu=offload)
        if mmproj_path is not None
        else None
    )
    threads = n_threads or llama_threads()
    try:
        llama = llama_cls(
            model_path=str(path),
            n_ctx=n_ctx,
            n_batch=min(n_batch, n_ctx),
            n_gpu_layers=layers,
            n_threads=threads,
            n_threads_batch=max(threads, llama_threads()),
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
    if handler is None and prompt_cache_bytes > 0:
        llama.set_cache(cache_cls(capacity_bytes=prompt_cache_bytes))
    return LlamaModel(
        llama,
        model_id=model_id or path.name,
        path=path,
        mmproj=mmproj_path,
        n_gpu_layers=layers,
        seed=seed,
        timeout_s=timeout_s,
        retries=retries,
        **defaults,
    )
