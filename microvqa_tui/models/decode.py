"""The decode loop of in-process text models: prompt reuse, token masks, jump-forward.

`llama.create_chat_completion` costs a fixed ~0.1 s per call on a small CPU model (a
prompt-cache lookup in Python, a `load_state` that rewrites a n_batch x n_vocab score buffer,
a `save_state` after every call, a ctypes logits-processor callback per token), which
dominated the 6-20-token replies of the short stage schemas. This loop does only what a call
needs:

* the prompt is matched against the tokens already in the KV cache, and against a small
  cache of saved prompt states (`PromptStates`: sequence-0 KV bytes, saved after a prompt
  evaluation that cost something), and only the rest is evaluated;
* the llguidance mask is written straight into llama.cpp's logits buffer, and the sampler
  chain (llama.cpp's own top-k/top-p/min-p/temperature, seeded) samples from it;
* forced tokens (`compute_ff_tokens`: keys, separators, the end of an enum value) are
  consumed without sampling and evaluated in one batch with the sampled token
  ("jump-forward"), the first ones together with the prompt;
* the call ends when the grammar is complete (the closing brace), without a model step
  to sample the end-of-turn token, and the last token is never evaluated.

Sampling matches llama-cpp-python's chat completion (min_p 0.05, typical_p 1, repeat penalty
1 unless given) so outputs keep their character; they differ from it only where forced
tokens are tokenized canonically.
"""

from __future__ import annotations

import ctypes
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from microvqa_tui.errors import GenerationError

MIN_SAVE_TOKENS = 24  # a prompt evaluation shorter than this is cheaper to redo than to save
MIN_RESTORE_GAIN = 16  # restore a saved state only when it saves this many tokens


@dataclass
class DecodeStats:
    """One decode: prompt tokens (all, and those evaluated), output tokens (and how many
    were forced), model forward passes after the prompt, and the time of each phase."""

    prompt_tokens: int = 0
    prompt_evaluated: int = 0
    completion_tokens: int = 0
    forced_tokens: int = 0
    steps: int = 0
    prompt_seconds: float = 0.0
    decode_seconds: float = 0.0
    finish_reason: str = ""  # "stop" | "length" | "timeout"


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """How many leading tokens `a` and `b` share."""
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if differ.size else n


class PromptStates:
    """Saved KV states of sequence 0, keyed by their tokens, least recently used dropped
    first beyond `capacity_bytes`."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity = capacity_bytes
        self.entries: OrderedDict[bytes, tuple[np.ndarray, bytes]] = OrderedDict()
        self.size = 0

    def best(self, tokens: np.ndarray) -> tuple[int, bytes | None, np.ndarray | None]:
        """(shared prefix, state, its tokens) of the entry sharing the longest prefix."""
        best: tuple[int, bytes | None, np.ndarray | None] = (0, None, None)
        for key, (saved, state) in self.entries.items():
            n = common_prefix(saved, tokens)
            if n > best[0]:
                best = (n, state, saved)
                hit = key
        if best[1] is not None:
            self.entries.move_to_end(hit)
        return best

    def put(self, tokens: np.ndarray, state: bytes) -> None:
        key = tokens.tobytes()
        if key in self.entries:
            self.entries.move_to_end(key)
            return
        self.entries[key] = (tokens, state)
        self.size += len(state)
        while self.size > self.capacity and self.entries:
            _, (_, old) = self.entries.popitem(last=False)
            self.size -= len(old)


class Decoder:
    """Runs calls on one loaded `llama_cpp.Llama` (text model; callers serialise calls)."""

    def __init__(self, llama: Any, *, prompt_cache_bytes: int) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self.llama = llama
        self.n_vocab = int(llama.n_vocab())
        self.vocab = llama._model.vocab
        self.states = PromptStates(prompt_cache_bytes) if prompt_cache_bytes > 0 else None
        self._formatter: Any = None
        #: called with the next token's logits (in place) before the mask; tests use it to
        #: push the model towards what the mask must refuse
        self.adjust_logits: Callable[[np.ndarray], None] | None = None

    # -- prompt
    def prompt_text(self, messages: list[dict[str, Any]], template: str) -> str:
        """The chat prompt (the GGUF's template, rendered as llama-cpp-python renders it)."""
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            llama = self.llama
            self._formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=llama._model.token_get_text(llama.token_eos()),
                bos_token=llama._model.token_get_text(llama.token_bos()),
            )
        return str(self._formatter(messages=messages).prompt)

    def prompt_tokens(self, messages: list[dict[str, Any]], template: str) -> np.ndarray:
        text = self.prompt_text(messages, template)
        ids = self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        return np.asarray(ids, dtype=np.intc)

    def _restore(self, prompt: np.ndarray, in_context: int) -> int:
        """Load the saved state sharing most of `prompt` when it beats the KV cache's own
        prefix; the number of prompt tokens then already in place."""
        if self.states is None:
            return in_context
        shared, state, saved = self.states.best(prompt)
        if state is None or saved is None or shared < in_context + MIN_RESTORE_GAIN:
            return in_context
        llama, lib = self.llama, self._lib
        llama._ctx.kv_cache_clear()
        buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        if lib.llama_state_seq_set_data(llama._ctx.ctx, buffer, len(state), 0) != len(state):
            llama._ctx.kv_cache_clear()
            llama.n_tokens = 0
            return 0
        llama.input_ids[: len(saved)] = saved
        llama.n_tokens = len(saved)
        return shared

    def _save(self) -> None:
        llama, lib = self.llama, self._lib
        if self.states is None or llama.n_tokens < MIN_SAVE_TOKENS:
            return
        size = lib.llama_state_seq_get_size(llama._ctx.ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        n = lib.llama_state_seq_get_data(llama._ctx.ctx, buffer, size, 0)
        if 0 < n <= size:
            self.states.put(llama.input_ids[: llama.n_tokens].copy(), bytes(buffer)[:n])

    def prefill(self, prompt: np.ndarray, forced: list[int]) -> int:
        """Put `prompt` + `forced` in the KV cache, evaluating only what is not there yet;
        the last token is always evaluated (its logits are sampled next). Returns how many
        tokens were evaluated."""
        llama = self.llama
        tokens = np.concatenate([prompt, np.asarray(forced, dtype=np.intc)])
        keep = common_prefix(llama.input_ids[: llama.n_tokens], tokens)
        keep = self._restore(tokens, keep)
        keep = min(keep, len(tokens) - 1)
        if not llama._ctx.kv_cache_seq_rm(0, keep, -1):
            llama._ctx.kv_cache_clear()
            keep = 0
        llama.n_tokens = keep
        rest = tokens[keep:].tolist()
        if len(rest) >= MIN_SAVE_TOKENS and len(rest) > 1:
            llama.eval(rest[:-1])  # the state worth keeping: everything but the last token
            self._save()
            llama.eval(rest[-1:])
        else:
            llama.eval(rest)
        return len(rest)

    # -- generation
    def sampler(self, options: dict[str, Any]) -> Any:
        """llama.cpp's sampler chain for `options` (chat-completion defaults otherwise)."""
        llama = self.llama
        llama.set_seed(int(options.get("seed", 0)))
        return llama._init_sampler(
            top_k=int(options.get("top_k", 40)),
            top_p=float(options.get("top_p", 0.95)),
            min_p=float(options.get("min_p", 0.05)),
            typical_p=1.0,
            temp=float(options.get("temperature", 0.0)),
            repeat_penalty=float(options.get("repeat_penalty", 1.0)),
        )

    def _logits(self) -> np.ndarray:
        """llama.cpp's logits buffer for the last evaluated token (sampled from in place)."""
        pointer = self._lib.llama_get_logits_ith(self.llama._ctx.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))

    def _mask(self, matcher: Any, bitmask: np.ndarray) -> None:
        """Forbidden tokens' logits become -inf."""
        from llguidance.numpy import fill_next_token_bitmask

        fill_next_token_bitmask(matcher, bitmask)
        logits = self._logits()
        allowed = np.unpackbits(bitmask.view(np.uint8), bitorder="little", count=self.n_vocab)
        logits[allowed == 0] = -np.inf

    def run(
        self,
        prompt: np.ndarray,
        matcher: Any,
        bitmask: np.ndarray | None,
        options: dict[str, Any],
        deadline: float,
        *,
        stop_at_end: bool = True,
    ) -> tuple[list[int], DecodeStats]:
        """Generate after `prompt`; `matcher` (llguidance, reset) constrains, or None.
        `stop_at_end=False` runs past the end-of-turn token to `max_tokens` (benchmarks)."""
        llama = self.llama
        stats = DecodeStats(prompt_tokens=len(prompt))
        max_tokens = int(options.get("max_tokens") or 256)
        out = _forced(matcher)[:max_tokens]
        stats.forced_tokens = len(out)
        start = time.perf_counter()
        stats.prompt_evaluated = self.prefill(prompt, out)
        stats.prompt_seconds = time.perf_counter() - start
        sampler = self.sampler(options)
        for token in out:
            sampler.accept(token)  # the repeat penalty sees forced tokens too
        stats.finish_reason = "length"
        while len(out) < max_tokens and not (matcher is not None and matcher.is_stopped()):
            if time.monotonic() >= deadline:
                stats.finish_reason = "timeout"
                break
            if self.adjust_logits is not None:
                self.adjust_logits(self._logits())
            if matcher is not None:
                self._mask(matcher, bitmask)
            token = sampler.sample(llama._ctx, -1)
            if (
                stop_at_end
                and self._lib.llama_vocab_is_eog(self.vocab, token)
                and (matcher is None or matcher.is_accepting())
            ):
                stats.finish_reason = "stop"
                break
            step = [token]
            if matcher is not None:
                if not matcher.consume_token(token):
                    raise GenerationError(
                        f"the token mask refused token {token}: {matcher.get_error()}"
                    )
                step += _forced(matcher)
                for extra in step[1:]:
                    sampler.accept(extra)
            step = step[: max_tokens - len(out)]
            out += step
            stats.forced_tokens += len(step) - 1
            if len(out) >= max_tokens or (matcher is not None and matcher.is_stopped()):
                break  # nothing is sampled after these: no need to evaluate them
            llama.eval(step)
            stats.steps += 1
        if matcher is not None and matcher.is_stopped():
            stats.finish_reason = "stop"
        stats.completion_tokens = len(out)
        stats.decode_seconds = time.perf_counter() - start - stats.prompt_seconds
        return out, stats

    def text(self, tokens: list[int]) -> str:
        return self.llama.detokenize(tokens).decode("utf-8", errors="ignore")


def _forced(matcher: Any) -> list[int]:
    """The tokens the grammar forces next, consumed by the matcher ([] without one)."""
    if matcher is None:
        return []
    tokens = list(matcher.compute_ff_tokens())
    if tokens and not matcher.consume_tokens(tokens):
        raise GenerationError(
            f"the token mask refused its own forced tokens: {matcher.get_error()}"
        )
    return tokens
