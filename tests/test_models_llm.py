"""The LLM client's in-process backend: llguidance token masks, strict parsing, timeouts,
retries, metering (tiny GGUF and the real SmolLM2-135M); the GBNF fallback."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from microvqa_tui.errors import ModelError, ModelMissingError
from microvqa_tui.models.client import TIMEOUT, UNPARSABLE, LLMRequest, Sampling

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


def _ask(
    llm, schema=SCHEMA, *, messages=MESSAGES, images=(), retries=None, timeout_s=None, **sampling
):
    request = LLMRequest(
        messages,
        schema,
        images=tuple(images),
        sampling=Sampling(**sampling),
        retries=retries,
        timeout_s=timeout_s,
    )
    return llm.ask(request)


def _push(monkeypatch, llm, bias: dict[int, float]) -> None:
    """Add `bias` to the logits before the token mask sees them."""
    tokens = np.array(list(bias), dtype=np.int64)
    values = np.array(list(bias.values()), dtype=np.float32)

    def push(logits):
        logits[tokens] += values

    monkeypatch.setattr(llm.decoder, "adjust_logits", push)


# ---------------------------------------------------------------------------- schemas
def test_gbnf_fallback_excludes_control_characters_and_bounds_strings():
    from microvqa_tui.models.grammar import schema_to_gbnf

    gbnf = schema_to_gbnf({"type": "object", "properties": {"q": {"type": "string"}}})
    assert r'char ::= [^"\\\x00-\x1F]' in gbnf
    assert "char{0,2000}" in gbnf
    assert r'["\\/nrt]' in gbnf  # no \b or \f escapes
    bounded = schema_to_gbnf({"type": "array", "items": {"type": "string"}}, max_string=50)
    assert "char{0,50}" in bounded and "]" in bounded


def test_bounds_walk_sub_schemas_by_keyword():
    from microvqa_tui.models.constrain import bounded_schema

    schema = {
        "type": "object",
        "properties": {
            "pattern": {"type": "string"},  # a field named like a keyword
            "type": {"type": "array", "items": {"type": "string", "minLength": 3000}},
        },
        "$defs": {"s": {"type": "string"}},
    }
    out = bounded_schema(schema, 100, 5)
    assert out["properties"]["pattern"] == {"type": "string", "maxLength": 100}
    assert out["properties"]["type"]["maxItems"] == 5
    assert out["properties"]["type"]["items"]["maxLength"] == 3000
    assert out["$defs"]["s"]["maxLength"] == 100
    assert out["additionalProperties"] is False  # no wandering into extra keys
    assert schema["properties"]["pattern"] == {"type": "string"}  # the input is not changed


def test_gbnf_fallback_refuses_patterns():
    from microvqa_tui.models.grammar import schema_to_gbnf

    with pytest.raises(ModelError, match="pattern"):
        schema_to_gbnf(
            {"type": "object", "properties": {"id": {"type": "string", "pattern": "^a+$"}}}
        )


def test_schemas_compile_to_token_masks_and_unsupported_ones_fall_back_with_a_reason():
    from microvqa_tui.models.constrain import compile_schema

    assert compile_schema(SCHEMA).kind == "llguidance"
    enum = {"type": "string", "enum": ['say "hi"', "back\\slash", "{brace}", "µm é"]}
    assert compile_schema({"type": "object", "properties": {"e": enum}}).kind == "llguidance"
    odd = compile_schema(
        {
            "type": "object",
            "properties": {"a": {"type": "string"}},
            "dependentRequired": {"a": ["b"]},
        }
    )
    assert odd.kind == "gbnf" and "llguidance cannot compile" in odd.note


def test_gbnf_fallback_keeps_enum_values_with_quotes_and_backslashes(tiny_llm):
    """A schema llguidance refuses goes through GBNF; its enum literals must still parse in
    llama.cpp (the stock converter left backslashes raw: a crash on `"`)."""
    values = ['say "hi"', "back\\slash", "{brace}", "µm é"]
    schema = {
        "type": "object",
        "properties": {"e": {"type": "string", "enum": values}},
        "required": ["e"],
        "dependentRequired": {"e": ["e"]},  # not supported by llguidance: the fallback
    }
    for seed in range(3):
        result = _ask(tiny_llm, schema, temperature=1.0, seed=seed, max_tokens=60)
        assert result.ok, result.message
        assert json.loads(result.raw)["e"] in values
    assert any("llguidance cannot compile" in note for note in tiny_llm.fallbacks.values())


def test_strict_loads_rejects_what_json_loads_lets_through():
    from microvqa_tui.models.client import strict_loads

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
    assert not tiny_llm.vision and tiny_llm.device == "cpu" and tiny_llm.in_flight == 1


@pytest.mark.parametrize("seed", range(6))
def test_json_output_always_parses_strictly(tiny_llm, seed):
    result = _ask(tiny_llm, temperature=1.0, seed=seed, max_tokens=400)
    assert result.ok, result.message
    assert json.loads(result.raw) == result.value  # strict=True is json.loads' default
    _check_schema(result.value)
    assert result.completion_tokens > 10 and result.prompt_tokens > 10
    assert result.seconds > 0 and result.tokens_per_s > 0


def test_control_characters_cannot_get_into_strings(tiny_llm, tiny_gguf, monkeypatch):
    """The model is pushed hard towards raw control characters and backslashes; the
    token mask must still only let strict JSON through."""
    bias = {tiny_gguf.token_for(c): 40.0 for c in CONTROL}
    bias[tiny_gguf.token_for("\\")] = 8.0
    _push(monkeypatch, tiny_llm, bias)
    for seed in range(4):
        result = _ask(tiny_llm, temperature=1.0, seed=seed, max_tokens=400)
        json.loads(result.raw)
        strings = [result.value["answer"], *result.value["choices"]]
        assert not any(ch in s for s in strings for ch in CONTROL if ch not in "\t\n\r")


def test_same_seed_same_output(tiny_llm):
    a = _ask(tiny_llm, temperature=0.8, seed=7)
    b = _ask(tiny_llm, temperature=0.8, seed=7)
    assert a.raw == b.raw


def test_token_limit_is_retried_then_reported_with_the_raw_text(tiny_llm):
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string", "minLength": 60}},
        "required": ["a"],
    }
    result = _ask(tiny_llm, schema, max_tokens=12, retries=2, temperature=1.0)
    assert result.error == UNPARSABLE and result.attempts == 3
    assert result.raw.startswith("{") and "[length]" in result.message
    assert "max_tokens=12" in result.message and result.completion_tokens >= 3 * 12


def test_timeout_stops_generation(tiny_llm, tiny_gguf, monkeypatch):
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string", "maxLength": 3500}},
        "required": ["a"],
    }
    _push(monkeypatch, tiny_llm, {tiny_gguf.token_for('"'): -100.0})  # never close the string
    start = time.monotonic()
    result = _ask(tiny_llm, schema, max_tokens=3900, timeout_s=0.3, retries=3, temperature=1.0)
    elapsed = time.monotonic() - start
    assert result.error == TIMEOUT and "[timeout]" in result.message  # its own outcome
    assert result.attempts == 1  # a timeout is not retried
    assert elapsed < 3.0
    assert result.raw.startswith("{") and result.completion_tokens < 3900


def test_retry_uses_the_next_seed_and_succeeds(tiny_llm, monkeypatch):
    from microvqa_tui.models import llm as llm_mod

    seen = []

    def fake_decode(messages, matcher, *, deadline, options):
        seen.append((options["seed"], options["temperature"]))
        text = '{"a": ' if len(seen) == 1 else '{"a": "ok"}'
        return text, llm_mod.CallStats(10, 3, 0.01, "length" if len(seen) == 1 else "stop")

    monkeypatch.setattr(tiny_llm, "_decode", fake_decode)
    result = _ask(tiny_llm, {"type": "object"}, seed=5, temperature=0.0)
    assert result.value == {"a": "ok"} and result.attempts == 2
    assert seen == [(5, 0.0), (6, 0.3)]  # greedy retries get some temperature
    assert result.completion_tokens == 6


def test_a_model_failure_is_a_result_not_a_crash(tiny_llm):
    before = tiny_llm.meter.copy()
    result = _ask(tiny_llm, images=[image_bytes(1)])
    assert result.error == "failed" and "cannot read images" in result.message
    huge = [{"role": "user", "content": "word " * 5000}]  # longer than the context
    result = _ask(tiny_llm, messages=huge)
    assert result.error == "failed" and "MICROVQA_MODELS__LLM_CONTEXT" in result.message
    assert tiny_llm.meter.since(before).failed_calls == 2


def test_images_become_data_uris():
    from microvqa_tui.models.messages import image_data_uri, prepare_messages

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


def test_free_text_and_metering(tiny_llm):
    before = tiny_llm.meter.copy()
    out = _ask(tiny_llm, None, max_tokens=8, temperature=1.0)
    assert out.ok and out.value == out.raw and 0 < out.completion_tokens <= 8
    spent = tiny_llm.meter.since(before)
    assert spent.calls == 1 and spent.completion_tokens == out.completion_tokens
    assert tiny_llm.decoder.states is not None  # the prompt-state cache is on for text models


def test_requests_in_flight_come_back_by_index():
    from microvqa_tui.models.client import ScriptedClient

    client = ScriptedClient(lambda r: {"n": r.sampling.seed}, in_flight=3)
    requests = [
        LLMRequest(MESSAGES, {"type": "object"}, sampling=Sampling(seed=i)) for i in range(7)
    ]
    results = client.ask_all(requests)
    assert [r.value["n"] for r in results] == list(range(7))
    assert client.meter.calls == 7


def test_a_cancel_stops_submitting_and_the_calls_in_flight_finish():
    from microvqa_tui.errors import Cancelled
    from microvqa_tui.models.client import ScriptedClient
    from microvqa_tui.progress import CancelToken

    token = CancelToken()

    def reply(request):
        if request.sampling.seed == 2:
            token.cancel()
        return {"n": request.sampling.seed}

    client = ScriptedClient(reply, in_flight=2)
    requests = [
        LLMRequest(MESSAGES, {"type": "object"}, sampling=Sampling(seed=i)) for i in range(9)
    ]
    done = dict(client.ask_many(requests, cancel=token))
    assert 3 <= len(done) <= 4 and set(done) == set(range(len(done)))  # a prefix, no gaps
    with pytest.raises(Cancelled):
        client.ask_all(requests, cancel=token)


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
    """The projector loads lazily (llama-cpp-python); a bad one fails the call, no crash."""
    from microvqa_tui.models.llm import load_llm

    proj = tmp_path / "mmproj.gguf"
    proj.write_bytes(b"GGUF not a projector")
    vlm = load_llm(tiny_gguf.path, mmproj=proj, n_ctx=512, n_threads=1)
    try:
        assert vlm.vision and vlm.decoder is None  # vision models go through their handler
        result = _ask(vlm, images=[image_bytes(1)], max_tokens=8)
        assert result.error == "failed" and result.message
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
    result = _ask(
        smollm, MCQ_SCHEMA, messages=MCQ_MESSAGES, temperature=0.7, seed=1, max_tokens=320
    )
    assert result.ok, result.message
    data = json.loads(result.raw)
    assert data == result.value
    assert isinstance(data["question"], str) and data["question"]
    assert len(data["options"]) == 4 and data["answer_index"] in range(4)
    assert all(len(o) <= 120 for o in data["options"]) and len(data["question"]) <= 300
    assert result.completion_tokens > 10 and result.tokens_per_s > 0
    assert smollm.model_id.endswith(".gguf")


@pytest.mark.slow
def test_smollm_enums_keep_quotes_backslashes_braces_and_non_ascii(smollm):
    """Enum values with JSON-special and non-ASCII characters (Stage 1's caption sentences):
    the reply is one of them exactly."""
    values = ['The "bipolar" spindle.', "Path C:\\data\\a.tif.", "Label {x: 2}.", "Noyaux à 1 µm."]
    schema = {
        "type": "object",
        "properties": {"evidence": {"type": "string", "enum": values}},
        "required": ["evidence"],
    }
    for seed in range(4):
        result = _ask(
            smollm, schema, messages=MCQ_MESSAGES, temperature=1.0, seed=seed, max_tokens=40
        )
        assert result.ok, result.message
        assert json.loads(result.raw)["evidence"] in values


def test_a_prompt_seen_before_is_restored_not_evaluated_again(tiny_llm):
    """Calls alternating between two long prompts: the second time, each prompt comes back
    from the saved KV states (only its last token is evaluated) and the greedy reply is the
    same as the first time."""
    long_a = [{"role": "user", "content": "alpha " * 120}]
    long_b = [{"role": "user", "content": "beta " * 120}]
    first = [_ask(tiny_llm, messages=m, temperature=0.0, max_tokens=60) for m in (long_a, long_b)]
    evaluated = []
    again = []
    for messages in (long_a, long_b):
        again.append(_ask(tiny_llm, messages=messages, temperature=0.0, max_tokens=60))
        evaluated.append(tiny_llm.last_calls[-1].decoded.prompt_evaluated)
    assert [r.raw for r in again] == [r.raw for r in first]
    forced = [c.decoded.forced_tokens for c in tiny_llm.last_calls]
    assert all(n <= 1 + forced[-1] for n in evaluated), evaluated  # not ~120 tokens


def test_forced_tokens_skip_model_steps_and_the_closing_brace_ends_the_call(smollm):
    """An enum reply: the key, the quotes and the brace are forced, so the model is stepped
    at most once per enum choice and never to sample an end-of-turn token."""
    schema = {
        "type": "object",
        "properties": {"supported": {"enum": ["yes", "no"]}},
        "required": ["supported"],
    }
    result = _ask(smollm, schema, temperature=0.0, max_tokens=16)
    assert result.ok and result.value["supported"] in ("yes", "no")
    decoded = smollm.last_calls[-1].decoded
    assert decoded.finish_reason == "stop"
    assert decoded.steps <= 1 < decoded.forced_tokens < result.completion_tokens
