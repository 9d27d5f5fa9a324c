"""JSON schema -> GBNF grammar: the fallback for a schema llguidance cannot compile.

Every output parses with strict `json.loads`.

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

* literals (enum and const values) escape backslashes too: the stock converter left them
  raw, so a value with a quote made a grammar llama.cpp could not parse (it crashed).

`pattern` is refused: the stock pattern converter does not JSON-escape what it produces.
The module imports `llama_cpp.llama_grammar` (pure Python, no native library) lazily.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from microvqa_tui.errors import ModelError
from microvqa_tui.models.constrain import DEFAULT_MAX_ITEMS, DEFAULT_MAX_STRING, bounded_schema

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

        def _format_literal(self, literal: str) -> str:
            # the stock one escapes quotes and newlines but not backslashes, so an enum value
            # with a quote ("say \\"hi\\"" in JSON) became a grammar llama.cpp cannot parse
            escaped = literal.replace("\\", "\\\\").replace('"', '\\"')
            return '"' + escaped.replace("\r", "\\r").replace("\n", "\\n") + '"'

        def _visit_pattern(self, pattern: str, name: str) -> str:
            raise ModelError(
                f"JSON schema 'pattern' ({pattern!r}) is not supported for constrained output",
                hint="use enum, maxLength or a post-check instead",
            )

    return SafeSchemaConverter


_SAFE_CONVERTER: type | None = None
_NOT_PLAIN_STRING = ("enum", "const", "format", "pattern", "$ref", "anyOf", "oneOf", "allOf")


@functools.lru_cache(maxsize=128)
def _schema_to_gbnf_cached(schema_json: str, max_string: int, max_items: int) -> str:
    global _SAFE_CONVERTER
    if _SAFE_CONVERTER is None:
        _SAFE_CONVERTER = _converter_class()
    schema = bounded_schema(json.loads(schema_json), max_string, max_items, gbnf=True)
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
