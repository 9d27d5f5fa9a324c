"""Stage 3 throughput on this machine with the real offline model (SmolLM2-135M-Instruct).

    python benchmarks/mcq.py              # 8 QAs about the embedded sample figures
    python benchmarks/mcq.py --n 4 --select

Writes the sample captions and hand-written QA pairs (kept) into a fresh store, runs the
whole `mcq` step (prompting, constrained generation, checks, quarantine, position balancing,
store writes, run record) and prints:

* MCQs per minute (and QAs processed per minute, failures included),
* generated tokens per second over the whole stage, and inside the model alone,
* the share of the stage's wall time spent outside the model (target: under 10%),
  the baseline being the model's own time on the same calls.

With --select the selection step runs on the result with small k and is timed the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from microvqa_tui.config import load_settings  # noqa: E402
from microvqa_tui.models.registry import get_llm  # noqa: E402
from microvqa_tui.pipeline.select import SelectSettings, run_select  # noqa: E402
from microvqa_tui.pipeline.stage3 import MCQSettings, run_mcq  # noqa: E402
from store import open_store, text_id  # noqa: E402
from store.schema import utcnow  # noqa: E402

TARGET_OUTSIDE_SHARE = 0.10

# (sample id, question, answer, task type): QAs a stage-1 model could write from the captions.
QAS = [
    (
        "sample-001",
        "Where do the nests of nevus cells lie in this section?",
        "In the mid dermis, apart from the epidermis",
        "expert_visual_understanding",
    ),
    (
        "sample-002",
        "Which epidermal layer is made of small, crowded cells with dark nuclei?",
        "The basal layer",
        "expert_visual_understanding",
    ),
    (
        "sample-005",
        "Which cells are stained by the Ki-67 antibody?",
        "Basal keratinocytes of the epidermis",
        "expert_visual_understanding",
    ),
    (
        "sample-005",
        "Why are the Ki-67 positive cells confined to the basal layer?",
        "The basal layer holds the dividing cells that renew the epidermis",
        "hypothesis_generation",
    ),
    (
        "sample-014",
        "Which dye marks the nuclei in this confocal image?",
        "DAPI, shown in blue",
        "expert_visual_understanding",
    ),
    (
        "sample-021",
        "Which stage of mitosis do the two parallel bright chromatin bars show?",
        "Late anaphase or telophase",
        "hypothesis_generation",
    ),
    (
        "sample-022",
        "How could touching nuclei be separated in the segmentation?",
        "Split the thresholded objects with a watershed transform",
        "experiment_proposal",
    ),
    (
        "sample-024",
        "How are the hepatocytes arranged in this liver section?",
        "In plates radiating from a central vein",
        "expert_visual_understanding",
    ),
]


def load_captions() -> dict[str, str]:
    captions = {}
    with open(REPO / "assets" / "sample" / "manifest.jsonl", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            captions[record["id"]] = record["caption"]
    return captions


def write_qas(store, n: int) -> int:
    captions = load_captions()
    caption_rows, qa_rows = {}, []
    for i in range(n):
        sample, question, answer, task = QAS[i % len(QAS)]
        if i >= len(QAS):
            question = f"{question} (variant {i // len(QAS)})"
        figure_id = text_id("bench-figure", sample)
        caption_id = text_id(figure_id, captions[sample])
        caption_rows[caption_id] = {
            "caption_id": caption_id,
            "figure_id": figure_id,
            "text": captions[sample],
            "created_at": utcnow(),
        }
        qa_rows.append(
            {
                "qa_id": text_id(figure_id, question, answer),
                "figure_id": figure_id,
                "caption_id": caption_id,
                "question": question,
                "answer": answer,
                "task_type": task,
                "origin": "stage1",
                "status": "kept",
                "created_at": utcnow(),
            }
        )
    store.insert_new("captions", list(caption_rows.values()))
    return store.insert_new("qas", qa_rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=8, help="QAs to turn into MCQs")
    parser.add_argument("--attempts", type=int, default=2, help="mcq.max_attempts")
    parser.add_argument(
        "--threads", type=int, default=0, help="llama.cpp threads (models.llm_threads; 0 = cores)"
    )
    parser.add_argument("--select", action="store_true", help="also time the selection step")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            store=Path(tmp) / "store", models={"llm_threads": args.threads, "llm_context": 2048}
        )
        settings = settings.model_copy(
            update={
                "mcq": MCQSettings(max_attempts=args.attempts),
                "select": SelectSettings(
                    image_free_attempts=3, difficulty_attempts=3, rewrite_rounds=1
                ),
            }
        )
        store = open_store(settings.store)
        write_qas(store, args.n)
        clock = time.perf_counter()
        llm = get_llm(settings)
        load_s = time.perf_counter() - clock
        report = run_mcq(store, settings, llm=llm)
        llm_info = report.llm
        total_s = report.seconds
        model_s = llm_info["model_seconds"]
        figures = {
            "model": report.model,
            "threads": args.threads or "cores",
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "model_load_s": round(load_s, 2),
            "qas": report.processed,
            "mcqs": report.generated,
            "held_out": report.held_out,
            "reasons": report.reasons,
            "attempts": report.attempts,
            "model_calls": llm_info["calls"],
            "stage_s": total_s,
            "model_s": model_s,
            "mcqs_per_minute": round(report.generated * 60 / total_s, 2),
            "qas_per_minute": round(report.processed * 60 / total_s, 2),
            "generated_tokens": llm_info["completion_tokens"],
            "prompt_tokens": llm_info["prompt_tokens"],
            "tokens_per_s_stage": round(llm_info["completion_tokens"] / total_s, 1),
            "tokens_per_s_model": round(llm_info["completion_tokens"] / max(model_s, 1e-9), 1),
            "outside_model_share": report.outside_model_share,
            "target_outside_share": TARGET_OUTSIDE_SHARE,
        }
        if args.select:
            sel = run_select(store, settings, llm=llm)
            figures["select"] = {
                "mcqs": sel.checked,
                "stage_s": sel.seconds,
                "model_calls": sel.llm["calls"],
                "mcqs_per_minute": round(sel.checked * 60 / max(sel.seconds, 1e-9), 2),
                "outside_model_share": sel.outside_model_share,
                "kept": sel.kept,
                "held_out": sel.held_out,
                "flagged": sel.flagged,
            }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(
        f"model {figures['model']} (loaded in {figures['model_load_s']} s), threads "
        f"{figures['threads']}, load average {figures['load_average']}"
    )
    print(
        f"{figures['qas']} QAs -> {figures['mcqs']} MCQs ({figures['held_out']} held out: "
        f"{figures['reasons']}) in {figures['attempts']} attempts, {total_s:.1f} s"
    )
    print(f"MCQs per minute          {figures['mcqs_per_minute']:8.2f}")
    print(f"QAs per minute           {figures['qas_per_minute']:8.2f}")
    print(f"generated tokens/s stage {figures['tokens_per_s_stage']:8.1f}")
    print(f"generated tokens/s model {figures['tokens_per_s_model']:8.1f}  (baseline)")
    share = figures["outside_model_share"]
    verdict = "meets" if share < TARGET_OUTSIDE_SHARE else "misses"
    print(
        f"time outside the model   {share:8.1%}  ({verdict} the {TARGET_OUTSIDE_SHARE:.0%} "
        f"target; stage/model time ratio {total_s / max(model_s, 1e-9):.3f})"
    )
    if args.select:
        s = figures["select"]
        print(
            f"select: {s['mcqs']} MCQs in {s['stage_s']:.1f} s ({s['mcqs_per_minute']:.2f}/min, "
            f"{s['model_calls']} calls), outside the model {s['outside_model_share']:.1%}; "
            f"kept {s['kept']}, held out {s['held_out']}, flagged {s['flagged']}"
        )


if __name__ == "__main__":
    main()
