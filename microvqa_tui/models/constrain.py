"""JSON-schema constrained decoding for the in-process model: llguidance token masks.

Before each token llguidance computes the set of tokens that keep the output a prefix of
some JSON document valid for the schema (a bitmask over the vocabulary, ~50 µs); the
logits of every other token become -inf. The cost per token is independent of the
vocabulary walk a GBNF grammar does in llama.cpp, so constrained decoding runs at the
model's own speed.

What the mask guarantees (the stages rely on it): enums, `maxLength`/`minLength`,
`minItems`/`maxItems`, required keys, no extra keys with `additionalProperties: false`,
strings without raw control characters and with only the escapes \\" \\\\ \\n \\r \\t,
compact separators (", " and ": ") and no free whitespace, so a small model cannot wander.
Free strings and arrays get bounds (`DEFAULT_MAX_STRING`, `DEFAULT_MAX_ITEMS`) so a model
cannot loop inside one value, and objects with `properties` allow no other keys unless the
schema says `additionalProperties`. Every complete output parses with strict `json.loads`.

A schema llguidance cannot compile falls back to a GBNF grammar (`grammar.py`) for that
schema only; `compile_schema` says which and why (`Compiled.note`).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from microvqa_tui.errors import ModelError

DEFAULT_MAX_STRING = 2000
DEFAULT_MAX_ITEMS = 64

#: llguidance JSON compiler options: compact, no free whitespace, safe escapes only.
JSON_OPTIONS = {
    "whitespace_flexible": False,
    "item_separator": ", ",
    "key_separator": ": ",
    "json_allowed_escapes": '"\\nrt',  # no \\u: it could spell control characters
    "lenient": False,
}

_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_ONE = ("items", "additionalProperties", "not", "contains", "if", "then", "else")


def bounded_schema(schema: Any, max_string: int, max_items: int, *, gbnf: bool = False) -> Any:
    """A copy of `schema` where every free string has maxLength and every array maxItems.

    Walks sub-schemas by keyword (a property *named* "pattern" or "type" is just a name).
    `gbnf`: also spell type lists as anyOf and refuse `pattern` (for llama-cpp-python's GBNF
    converter, which would drop the bounds of ["string", "null"] and mis-escape patterns).
    """
    if not isinstance(schema, dict):
        return schema

    def sub(value: Any) -> Any:
        return bounded_schema(value, max_string, max_items, gbnf=gbnf)

    out = dict(schema)
    for key in _SCHEMA_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {name: sub(value) for name, value in out[key].items()}
    for key in _SCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [sub(value) for value in out[key]]
    for key in _SCHEMA_ONE:
        if isinstance(out.get(key), (dict, list)):
            out[key] = [sub(v) for v in out[key]] if isinstance(out[key], list) else sub(out[key])
    kind = out.get("type")
    if gbnf and isinstance(kind, list):
        rest = {k: v for k, v in out.items() if k != "type"}
        return {"anyOf": [sub({**rest, "type": t}) for t in kind]}
    if gbnf and "pattern" in out and kind in (None, "string"):
        raise ModelError(
            f"JSON schema 'pattern' ({out['pattern']!r}) is not supported by the GBNF fallback",
            hint="use enum, maxLength or a post-check instead",
        )
    strings = kind == "string" or (isinstance(kind, list) and "string" in kind)
    constrained = any(k in out for k in ("enum", "const", "format", "$ref", "pattern"))
    if strings and not constrained and "maxLength" not in out:
        out["maxLength"] = max(max_string, int(out.get("minLength", 0)))
    if kind == "array" and "maxItems" not in out:
        out["maxItems"] = max(max_items, int(out.get("minItems", 0)))
    if kind == "object" and "properties" in out and "additionalProperties" not in out:
        # JSON Schema allows extra keys by default, and a small model would wander into them
        out["additionalProperties"] = False
    return out


@dataclass(frozen=True)
class Compiled:
    """A schema ready for decoding: an llguidance grammar, or GBNF text as the fallback."""

    kind: str  # "llguidance" | "gbnf"
    grammar: str
    note: str = ""  # why the fallback was taken


@functools.lru_cache(maxsize=256)
def _compile(schema_json: str, max_string: int, max_items: int) -> Compiled:
    from llguidance import LLMatcher

    schema = bounded_schema(json.loads(schema_json), max_string, max_items)
    try:
        grammar = LLMatcher.grammar_from_json_schema(schema, overrides=JSON_OPTIONS)
        error = LLMatcher.validate_grammar(grammar)
    except (ValueError, TypeError) as exc:
        error = str(exc)
    if not error:
        return Compiled("llguidance", grammar)
    from microvqa_tui.models.grammar import schema_to_gbnf

    note = f"llguidance cannot compile this schema ({error.strip()[:300]}); using a GBNF grammar"
    return Compiled(
        "gbnf", schema_to_gbnf(schema, max_string=max_string, max_items=max_items), note
    )


def compile_schema(
    schema: Any, *, max_string: int = DEFAULT_MAX_STRING, max_items: int = DEFAULT_MAX_ITEMS
) -> Compiled:
    """The constraint for `schema` (cached per schema and bounds)."""
    # key order matters: properties are generated in the order given
    return _compile(json.dumps(schema, ensure_ascii=False), int(max_string), int(max_items))


class TokenMasks:
    """The llguidance tokenizer of one loaded llama.cpp model (built once: ~1 s), its
    matchers (one per grammar, reset between calls rather than rebuilt) and one bitmask."""

    def __init__(self, llama: Any) -> None:
        from llguidance.llamacpp import lltokenizer_from_vocab
        from llguidance.numpy import allocate_token_bitmask

        self.n_vocab = int(llama.n_vocab())
        self.eos = int(llama.token_eos())
        self.tokenizer = lltokenizer_from_vocab(llama._model.vocab)
        self.bitmask = allocate_token_bitmask(1, self.tokenizer.vocab_size)
        self._matchers: dict[str, Any] = {}

    def matcher(self, grammar: str) -> Any:
        """A matcher for `grammar` at its start (calls on one model are serialised)."""
        from llguidance import LLMatcher

        matcher = self._matchers.get(grammar)
        if matcher is not None and matcher.reset() and not matcher.is_error():
            return matcher
        matcher = LLMatcher(self.tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise ModelError(f"llguidance cannot start the grammar: {matcher.get_error()}")
        if len(self._matchers) >= 64:
            self._matchers.pop(next(iter(self._matchers)))
        self._matchers[grammar] = matcher
        return matcher

    def processor(self, grammar: str) -> MaskProcessor:
        return MaskProcessor(self, grammar)


class MaskProcessor:
    """A llama-cpp-python logits processor that masks every token the grammar forbids.

    llama-cpp-python calls it (from its sampler chain, before penalties and sampling) with
    the ids so far and the last logits. The ids past the prompt are fed to the matcher,
    then the next-token bitmask is applied. It runs inside a ctypes callback, where an
    exception would be swallowed: a matcher error is recorded in `error` and only the end
    token is allowed, so the call ends and the caller reports it.
    """

    def __init__(self, masks: TokenMasks, grammar: str) -> None:
        from llguidance import LLMatcher
        from llguidance.numpy import allocate_token_bitmask

        self.masks = masks
        self.matcher = LLMatcher(masks.tokenizer, grammar, log_level=0)
        self.bitmask = allocate_token_bitmask(1, masks.tokenizer.vocab_size)
        self.seen: int | None = None  # ids already fed to the matcher
        self.error = self.matcher.get_error() if self.matcher.is_error() else ""

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        from llguidance.numpy import fill_next_token_bitmask

        n = len(input_ids)
        if self.seen is None:
            self.seen = n  # the first call: everything so far is the prompt
        elif not self.error:
            for token in input_ids[self.seen : n]:
                if not self.matcher.consume_token(int(token)):
                    self.error = self.matcher.get_error() or f"token {int(token)} was refused"
                    break
            self.seen = n
        if self.error:
            out = np.full(len(scores), -np.inf, dtype=np.float32)
            out[self.masks.eos] = 0.0
            return out
        fill_next_token_bitmask(self.matcher, self.bitmask)
        bits = np.unpackbits(self.bitmask.view(np.uint8), bitorder="little")
        allowed = bits[: len(scores)].astype(bool)
        return np.where(allowed, scores, -np.inf).astype(np.float32, copy=False)


def gbnf_grammar(text: str) -> Any:
    """llama.cpp's compiled grammar for GBNF text (the fallback)."""
    from llama_cpp import LlamaGrammar

    try:
        return LlamaGrammar.from_string(text, verbose=False)
    except Exception as exc:  # llama.cpp reports a parse failure as an exception
        raise ModelError(f"llama.cpp cannot parse the fallback grammar: {exc}") from exc
