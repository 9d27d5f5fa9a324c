"""llama.cpp wrapper: JSON grammar, strict parsing, timeouts, retries, stats (tiny GGUF and
the real SmolLM2-135M)."""

from __future__ import annotations

import json
import time

import pytest

from microvqa_tui.errors import GenerationError, ModelError, ModelMissingError

try:
    from tests.model_helpers import (
        image_bytes,
        model_root,
        smollm,
        tiny_gguf,
        tiny_llm,
    )
except ImportError:
    from model_helpers import (  # type: ignore[no-redef]  # noqa: F401
        image_bytes,
        model_root,
        smollm,
        tiny_gguf,
        tiny_llm,
    )

MESSAGES = [
    {"role": "system", "content": "You write JSON."},
    {"role": "user", "content": "Describe the figure."},
]
SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"type": "string", "maxLength": 24},
        "n": {"type": "integer"},
        "ok": {"type": "boolean"},
        "choices": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 3},
        "label": {"enum": ["yes", "no", "unsure"]},
        "note": {"type": ["string", "null"], "maxLength": 10},
    },
    "required": ["answer", "n", "ok", "choices", "label", "note"],
}
CONTROL = "\x00\x01\x07\x08\t\n\x0b\x0c\r\x1b\x1f"


def _check_schema(data: dict) -> None:
    assert list(data) == list(SCHEMA["properties"])  # property order is kept
    assert isinstance(data["answer"], str) and len(data["answer"]) <= 24
    assert isinstance(data["n"], int) and isinstance(data["ok"], bool)
    assert len(data["choices"]) <= 3 and all(len(c) <= 12 for c in data["choices"])
    assert data["label"] in ("yes", "no", "unsure")
    assert data["note"] is None or len(data["note"]) <= 10


# ---------------------------------------------------------------------------- grammar
def test_grammar_excludes_control_characters_and_bounds_strings():
    from microvqa_tui.models.grammar import schema_to_gbnf

    gbnf = schema_to_gbnf({"type": "object", "properties": {"q": {"type": "string"}}})
    assert r'char ::= [^"\\\x00-\x1F]' in gbnf
    assert "char{0,2000}" in gbnf
    assert r'["\\/nrt]' in gbnf  # no \b or \f escapes
    bounded = schema_to_gbnf({"type": "array", "items": {"type": "string"}}, max_string=50)
    assert "char{0,50}" in bounded and "]" in bounded


def test_grammar_walks_sub_schemas_by_keyword():
    from microvqa_tui.models.grammar import _bounded

    schema = {
        "type": "object",
        "properties": {
            "pattern": {"type": "string"},  # a field named like a keyword
            "type": {"type": "array", "items": {"type": "string", "minLength": 3000}},
        },
        "$defs": {"s": {"type": "string"}},
    }
    out = _bounded(schema, 100, 5)
    assert out["properties"]["pattern"] == {"type": "string", "maxLength": 100}
    assert out["properties"]["type"]["maxItems"] == 5
    assert out["properties"]["type"]["items"]["maxLength"] == 3000
    assert out["$defs"]["s"]["maxLength"] == 100
    assert schema["properties"]["pattern"] == {"type": "string"}  # the input is not changed


def test_grammar_refuses_patterns():
    from microvqa_tui.models.grammar import schema_to_gbnf

    with pytest.raises(ModelError, match="pattern"):
        schema_to_gbnf(
            {"type": "object", "properties": {"id": {"type": "string", "pattern": "^a+$"}}}
        )


def test_strict_loads_rejects_what_json_loads_lets_through():
    from microvqa_tui.models.grammar import strict_loads

    assert strict_loads('{"a": "b\\nc"}') == {"a": "b\nc"}
    for bad in ('{"a": "b\nc"}', '{"a": NaN}', '{"a": Infinity}'):
        with pytest.raises(ValueError):
            strict_loads(bad)


# ---------------------------------------------------------------------------- tiny model
def test_tiny_model_loads_with_the_gguf_chat_template(tiny_llm):
    assert tiny_llm.llama.chat_format == "chat_template.default"
    prompt = tiny_llm.format_prompt(MESSAGES)
    assert prompt.startswith("<|im_start|>system\nYou write JSON.<|im_end|>")
    assert prompt.endswith("<|im_start|>assistant\n")
    assert not tiny_llm.vision and tiny_llm.device == "cpu"


@pytest.mark.parametrize("seed", range(6))
def test_json_output_always_parses_strictly(tiny_llm, seed):
    result = tiny_llm.generate_json(MESSAGES, SCHEMA, temperature=1.0, seed=seed, max_tokens=400)
    assert json.loads(result.raw) == result.data  # strict=True is json.loads' default
    _check_schema(result.data)
    assert result.completion_tokens > 10 and result.prompt_tokens > 10
    assert result.seconds > 0 and result.tokens_per_s > 0
    assert result.usage["total_tokens"] == result.prompt_tokens + result.completion_tokens


def test_control_characters_cannot_get_into_strings(tiny_llm, tiny_gguf):
    """The model is pushed hard towards raw control characters and backslashes; the
    grammar must still only produce strict JSON."""
    bias = {tiny_gguf.token_for(c): 40.0 for c in CONTROL}
    bias[tiny_gguf.token_for("\\")] = 8.0
    for seed in range(4):
        result = tiny_llm.generate_json(
            MESSAGES, SCHEMA, temperature=1.0, seed=seed, max_tokens=400, logit_bias=bias
        )
        json.loads(result.raw)
        strings = [result.data["answer"], *result.data["choices"]]
        assert not any(ch in s for s in strings for ch in CONTROL if ch not in "\t\n\r")


def test_stock_grammar_lets_control_characters_through(tiny_llm, tiny_gguf):
    """Why grammar.py exists: llama-cpp-python's own converter admits raw control chars."""
    from llama_cpp import LlamaGrammar

    from microvqa_tui.models.grammar import stock_gbnf

    bias = {tiny_gguf.token_for(c): 40.0 for c in CONTROL}
    out = tiny_llm.llama.create_chat_completion(
        MESSAGES,
        grammar=LlamaGrammar.from_string(stock_gbnf(SCHEMA), verbose=False),
        temperature=1.0,
        seed=0,
        max_tokens=300,
        logit_bias=bias,
    )
    raw = out["choices"][0]["message"]["content"]
    if not any(c in raw for c in CONTROL):
        pytest.skip("this llama-cpp-python's converter no longer admits control characters")
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)


def test_same_seed_same_output(tiny_llm):
    a = tiny_llm.generate_json(MESSAGES, SCHEMA, temperature=0.8, seed=7)
    b = tiny_llm.generate_json(MESSAGES, SCHEMA, temperature=0.8, seed=7)
    assert a.raw == b.raw


def test_token_limit_is_retried_then_raises_with_the_raw_text(tiny_llm):
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string", "minLength": 60}},
        "required": ["a"],
    }
    with pytest.raises(GenerationError) as info:
        tiny_llm.generate_json(MESSAGES, schema, max_tokens=12, retries=2, temperature=1.0)
    err = info.value
    assert err.reason == "length" and err.attempts == 3 and len(err.calls) == 3
    assert err.raw.startswith("{") and err.tokens == sum(c.completion_tokens for c in err.calls)
    assert "max_tokens=12" in str(err)


def test_timeout_stops_generation(tiny_llm, tiny_gguf):
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string", "maxLength": 3500}},
        "required": ["a"],
    }
    quote = tiny_gguf.token_for('"')
    start = time.monotonic()
    with pytest.raises(GenerationError) as info:
        tiny_llm.generate_json(
            MESSAGES,
            schema,
            max_tokens=3900,
            timeout_s=0.3,
            retries=3,
            temperature=1.0,
            logit_bias={quote: -100.0},  # never close the string: only the timeout ends it
        )
    elapsed = time.monotonic() - start
    err = info.value
    assert err.reason == "timeout" and err.attempts == 1  # a timeout is not retried
    assert elapsed < 3.0
    assert err.raw.startswith("{") and err.calls[0].timed_out
    assert err.calls[0].completion_tokens < 3900


def test_retry_uses_the_next_seed_and_succeeds(tiny_llm, monkeypatch):
    from microvqa_tui.models import llm as llm_mod

    seen = []

    def fake_complete(messages, *, grammar, deadline, options):
        seen.append((options["seed"], options["temperature"]))
        text = '{"a": ' if len(seen) == 1 else '{"a": "ok"}'
        return text, llm_mod.CallStats(10, 3, 0.01, "length" if len(seen) == 1 else "stop")

    monkeypatch.setattr(tiny_llm, "_complete", fake_complete)
    result = tiny_llm.generate_json(MESSAGES, {"type": "object"}, seed=5, temperature=0.0)
    assert result.data == {"a": "ok"} and result.attempts == 2
    assert seen == [(5, 0.0), (6, 0.3)]  # greedy retries get some temperature
    assert result.completion_tokens == 6


def test_text_model_refuses_images(tiny_llm):
    with pytest.raises(ModelError, match="cannot read images"):
        tiny_llm.generate_json(MESSAGES, SCHEMA, images=[image_bytes(1)])


def test_images_become_data_uris():
    from microvqa_tui.models.llm import image_data_uri, prepare_messages

    tiff = image_bytes(2, fmt="TIFF")
    uri = image_data_uri(tiff)
    assert uri.startswith("data:image/png;base64,")  # llama.cpp cannot decode TIFF
    assert image_data_uri(image_bytes(2, fmt="JPEG")).startswith("data:image/jpeg;base64,")
    messages, n = prepare_messages(
        [
            {"role": "system", "content": "s"},
            {
                "role": "user",
                "content": [
                    {"type": "image", "image": image_bytes(3)},
                    {"type": "text", "text": "t"},
                ],
            },
        ],
        images=[image_bytes(4)],
    )
    assert n == 2
    parts = messages[1]["content"]
    assert [p["type"] for p in parts] == ["image_url", "image_url", "text"]
    assert all(p["image_url"]["url"].startswith("data:image/png") for p in parts[:2])


def test_chat_and_totals(tiny_llm):
    before = tiny_llm.totals.completion_tokens
    out = tiny_llm.chat(MESSAGES, max_tokens=8, temperature=1.0)
    # llama-cpp-python may overshoot max_tokens by up to 3 while completing a UTF-8 character
    assert isinstance(out.text, str) and 0 < out.stats.completion_tokens <= 8 + 3
    assert tiny_llm.totals.completion_tokens == before + out.stats.completion_tokens
    assert tiny_llm.llama.cache is not None  # the RAM prompt cache is on for text models


def test_missing_files(tmp_path):
    from microvqa_tui.models.llm import load_llm

    with pytest.raises(ModelMissingError, match="not found"):
        load_llm(tmp_path / "absent.gguf")


def test_unknown_vision_handler(tiny_gguf, tmp_path):
    from microvqa_tui.models.llm import load_llm

    proj = tmp_path / "mmproj.gguf"
    proj.write_bytes(b"GGUF")
    with pytest.raises(ModelError, match="no vision chat handler"):
        load_llm(tiny_gguf.path, mmproj=proj, chat_handler="nonsense")


@pytest.mark.parametrize(
    ("filename", "handler", "expected"),
    [
        ("Qwen2.5-VL-3B-Instruct-Q4_K_M.gguf", "auto", "Qwen25VLChatHandler"),
        ("llava-v1.6-mistral-7b.Q4_K_M.gguf", "auto", "Llava16ChatHandler"),
        ("llava-v1.5-7b-Q4_K.gguf", "auto", "Llava15ChatHandler"),
        ("SmolVLM-500M-Instruct-Q8_0.gguf", "auto", "MTMDChatHandler"),
        ("anything.gguf", "qwen2.5-vl", "Qwen25VLChatHandler"),
    ],
)
def test_vision_handler_choice(tmp_path, filename, handler, expected):
    from pathlib import Path

    from microvqa_tui.models.llm import _vision_handler

    proj = tmp_path / "mmproj.gguf"
    proj.write_bytes(b"GGUF")
    chosen = _vision_handler(handler, proj, Path(filename), use_gpu=False)
    assert type(chosen).__name__ == expected


def test_broken_projector_fails_cleanly_on_first_image(tiny_gguf, tmp_path):
    """The projector loads lazily (llama-cpp-python); a bad one is a ModelError, not a crash."""
    from microvqa_tui.models.llm import load_llm

    proj = tmp_path / "mmproj.gguf"
    proj.write_bytes(b"GGUF not a projector")
    vlm = load_llm(tiny_gguf.path, mmproj=proj, n_ctx=512, n_threads=1)
    try:
        assert vlm.vision and vlm.llama.cache is None  # no prompt cache for vision models
        with pytest.raises(ModelError):
            vlm.generate_json(MESSAGES, SCHEMA, images=[image_bytes(1)], max_tokens=8)
    finally:
        vlm.close()


# ---------------------------------------------------------------------------- SmolLM2 (real)
MCQ_SCHEMA = {
    "type": "object",
    "properties": {
        "question": {"type": "string", "maxLength": 300},
        "options": {
            "type": "array",
            "items": {"type": "string", "maxLength": 120},
            "minItems": 4,
            "maxItems": 4,
        },
        "answer_index": {"type": "integer", "enum": [0, 1, 2, 3]},
    },
    "required": ["question", "options", "answer_index"],
}
MCQ_MESSAGES = [
    {
        "role": "system",
        "content": "You write one multiple-choice question about a microscopy figure, as JSON.",
    },
    {
        "role": "user",
        "content": "Caption: Confocal image of HeLa cells stained for tubulin (green) and "
        "DAPI (blue).\nLine one\tand a tab: write one question with four options.",
    },
]


@pytest.mark.slow
def test_smollm_writes_a_strict_json_mcq(smollm):
    result = smollm.generate_json(MCQ_MESSAGES, MCQ_SCHEMA, temperature=0.7, seed=1, max_tokens=320)
    data = json.loads(result.raw)
    assert data == result.data
    assert isinstance(data["question"], str) and data["question"]
    assert len(data["options"]) == 4 and data["answer_index"] in range(4)
    assert result.completion_tokens > 10 and result.tokens_per_s > 0
    assert smollm.model_id.endswith(".gguf")


@pytest.mark.slow
def test_smollm_through_the_stage1_interface(smollm):
    from microvqa_tui.pipeline.stage1 import generate as stage1

    gen = stage1.generate(smollm, MCQ_MESSAGES, MCQ_SCHEMA, seed=2, max_tokens=320)
    assert gen.error == "", gen.message
    assert len(gen.output["options"]) == 4
    assert gen.tokens > 10 and json.loads(gen.raw) == gen.output
