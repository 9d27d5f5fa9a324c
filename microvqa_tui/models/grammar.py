"""JSON schema -> GBNF grammar whose every output parses with strict `json.loads`.

llama-cpp-python's converter (`llama_cpp.llama_grammar.SchemaConverter`) is reused, with
three changes:

* string characters exclude raw control characters (U+0000-U+001F): the stock `char` rule
  is `[^"\\\\] | escape`, which lets a model emit a raw newline or NUL inside a string, and
  strict JSON rejects those;
* escapes are a safe subset of JSON's: `\\" \\\\ \\/ \\n \\r \\t` and `\\uXXXX` outside the
  control range and outside the UTF-16 surrogates (a lone surrogate parses but cannot be
  encoded as UTF-8 later);
* every free string gets a `maxLength` (default `DEFAULT_MAX_STRING`) and every array a
  `maxItems` (default `DEFAULT_MAX_ITEMS`), so a small model cannot loop forever inside one
  value. A schema's own bounds are kept.

`pattern` is refused: the stock pattern converter does not JSON-escape what it produces.
The module imports `llama_cpp.llama_grammar` (pure Python, no native library) lazily.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from microvqa_tui.errors import ModelError

DEFAULT_MAX_STRING = 2000
DEFAULT_MAX_ITEMS = 64

_HEX = "[0-9a-fA-F]"
#: \uXXXX with XXXX outside 0000-001F (controls) and D800-DFFF (surrogates).
_UNICODE_ESCAPE = (
    f'"u" ( "00" [2-9a-fA-F] {_HEX} | "0" [1-9a-fA-F] {_HEX} {_HEX}'
    f" | [1-9a-cA-C] {_HEX} {_HEX} {_HEX} | [dD] [0-7] {_HEX} {_HEX}"
    f" | [eEfF] {_HEX} {_HEX} {_HEX} )"
)
#: One JSON string character: no quote, backslash or C0 control; or a safe escape.
SAFE_CHAR_RULE = r'[^"\\\x00-\x1F] | "\\" ( ["\\/nrt] | ' + _UNICODE_ESCAPE + " )"


def _converter_class() -> type:
    from llama_cpp import llama_grammar as lg

    class SafeSchemaConverter(lg.SchemaConverter):
        """The stock converter with a control-free `char` rule and bounded free strings."""

        def __init__(self, *, max_string: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._max_string = max_string

        def _add_primitive(self, name: str, rule: Any) -> str:
            if name == "char":
                rule = lg.BuiltinRule(SAFE_CHAR_RULE, [])
            elif name == "string":
                # the generic string (free-form objects/values): bounded too
                rule = lg.BuiltinRule(
                    r'"\"" char{0,' + str(self._max_string) + r'} "\"" space', ["char"]
                )
            return super()._add_primitive(name, rule)

        def visit(self, schema: Any, name: str) -> str:
            # bounded strings as `char{m,n}` (llama.cpp expands it natively) rather than the
            # stock converter's n nested optional groups, which are slow to parse for large n
            if (
                isinstance(schema, dict)
                and schema.get("type") == "string"
                and "maxLength" in schema
                and not any(k in schema for k in _NOT_PLAIN_STRING)
            ):
                char = self._add_primitive("char", lg.PRIMITIVE_RULES["char"])
                low = int(schema.get("minLength", 0))
                high = max(low, int(schema["maxLength"]))
                rule_name = name + "-" if name in lg.RESERVED_NAMES else name or "root"
                return self._add_rule(
                    rule_name, r'"\"" ' + f"{char}{{{low},{high}}}" + r' "\"" space'
                )
            return super().visit(schema, name)

        def _visit_pattern(self, pattern: str, name: str) -> str:
            raise ModelError(
                f"JSON schema 'pattern' ({pattern!r}) is not supported for constrained output",
                hint="use enum, maxLength or a post-check instead",
            )

    return SafeSchemaConverter


_SAFE_CONVERTER: type | None = None
_NOT_PLAIN_STRING = ("enum", "const", "format", "pattern", "$ref", "anyOf", "oneOf", "allOf")


_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_ONE = ("items", "additionalProperties", "not", "contains", "if", "then", "else")


def _bounded(schema: Any, max_string: int, max_items: int) -> Any:
    """A copy of `schema` where every free string has maxLength and every array maxItems.

    Walks sub-schemas by keyword (a property *named* "pattern" or "type" is just a name).
    """
    if not isinstance(schema, dict):
        return schema

    def sub(value: Any) -> Any:
        return _bounded(value, max_string, max_items)

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
    if isinstance(kind, list):
        # the stock converter turns ["string", "null"] into bare {"type": t} alternatives and
        # would drop maxLength etc.; spell it as anyOf of full sub-schemas instead
        rest = {k: v for k, v in out.items() if k != "type"}
        return {"anyOf": [sub({**rest, "type": t}) for t in kind]}
    if "pattern" in out and kind in (None, "string"):
        raise ModelError(
            f"JSON schema 'pattern' ({out['pattern']!r}) is not supported for constrained output",
            hint="use enum, maxLength or a post-check instead",
        )
    constrained = any(k in out for k in ("enum", "const", "format", "$ref"))
    if kind == "string" and not constrained and "maxLength" not in out:
        out["maxLength"] = max(max_string, int(out.get("minLength", 0)))
    if kind == "array" and "items" in out and "maxItems" not in out:
        out["maxItems"] = max(max_items, int(out.get("minItems", 0)))
    return out


@functools.lru_cache(maxsize=128)
def _schema_to_gbnf_cached(schema_json: str, max_string: int, max_items: int) -> str:
    global _SAFE_CONVERTER
    if _SAFE_CONVERTER is None:
        _SAFE_CONVERTER = _converter_class()
    schema = _bounded(json.loads(schema_json), max_string, max_items)
    converter = _SAFE_CONVERTER(
        max_string=max_string,
        prop_order={},
        allow_fetch=False,
        dotall=False,
        raw_pattern=False,
    )
    try:
        schema = converter.resolve_refs(schema, "input")
        converter.visit(schema, "")
    except ModelError:
        raise
    except Exception as exc:  # the converter asserts on unsupported constructs
        raise ModelError(f"cannot turn the JSON schema into a grammar: {exc}") from exc
    return converter.format_grammar()


def schema_to_gbnf(
    schema: dict[str, Any] | str,
    *,
    max_string: int = DEFAULT_MAX_STRING,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> str:
    """The GBNF grammar (text) for `schema`; cached per (schema, bounds)."""
    if isinstance(schema, str):
        schema = json.loads(schema)
    schema_json = json.dumps(schema)  # key order matters: properties are generated in order
    return _schema_to_gbnf_cached(schema_json, int(max_string), int(max_items))


def stock_gbnf(schema: dict[str, Any]) -> str:
    """llama-cpp-python's own conversion (for comparison in tests and benchmarks)."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    return json_schema_to_gbnf(json.dumps(schema))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def strict_loads(text: str) -> Any:
    """`json.loads` in strict mode, also refusing NaN/Infinity (not JSON)."""
    return json.loads(text, parse_constant=_reject_constant)
