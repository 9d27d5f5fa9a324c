#!/usr/bin/env bash
# The main job on the embedded sample: set up, ingest, run every pipeline stage, export,
# summarise, then open the TUI (when run in a terminal).
#
#   bash scripts/demo.sh            # quick: Stage 1 on 16 captions, MCQs from 8 QAs (~10 min on 2 CPU cores)
#   bash scripts/demo.sh --full     # every caption and every kept QA (~1 h on 2 CPU cores, minutes on a GPU)
#   bash scripts/demo.sh --no-tui   # do not open the TUI at the end
#
# Every stage is resumable: running the quick demo again processes the next captions.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export MICROVQA_STORE=${MICROVQA_STORE:-$PWD/.microvqa/sample-store}
microvqa=(.venv/bin/microvqa)
open_tui=1
full=0
for arg in "$@"; do
  case "$arg" in
    --no-tui) open_tui=0 ;;
    --full) full=1 ;;
    *) echo "usage: bash scripts/demo.sh [--full] [--no-tui]" >&2; exit 2 ;;
  esac
done
if [ "$full" = 0 ]; then
  # The offline model here is SmolLM2-135M on the CPU: bound the LLM stages so the demo
  # finishes in minutes. Settings from the environment or a config file take precedence.
  export MICROVQA_STAGE1__LIMIT=${MICROVQA_STAGE1__LIMIT:-16}
  export MICROVQA_MCQ__LIMIT=${MICROVQA_MCQ__LIMIT:-8}
fi
export_dir=${MICROVQA_DEMO_EXPORT:-$PWD/.microvqa/sample-export}

# Each step's wall time, printed with the summary.
timings=()
step_name=""
step_start=0
end_step() {
  if [ -n "$step_name" ]; then timings+=("$(printf '%5d s  %s' $((SECONDS - step_start)) "${step_name%%:*}")"); fi
  step_name=""
}
step() { end_step; echo; echo "== $*"; step_name="$*"; step_start=$SECONDS; }
SECONDS=0

step "doctor"
"${microvqa[@]}" doctor
step "ingest the embedded sample into $MICROVQA_STORE"
"${microvqa[@]}" ingest assets/sample/manifest.jsonl
step "Stage 1: QA pairs from captions (local LLM)"
"${microvqa[@]}" run stage1
step "embeddings (MiniLM text; CLIP when present)"
"${microvqa[@]}" run embed
step "consistency signals (NLI, CLIP, text similarity, agent)"
"${microvqa[@]}" run signals
step "Stage 2: HiCQA-Graph consistency filter"
"${microvqa[@]}" run graph
step "Stage 3: multiple-choice questions with chain-of-thought"
"${microvqa[@]}" run mcq
step "selection: shortcut removal, Bloom levels, reasoning checks, difficulty"
"${microvqa[@]}" run select
step "spatial-reasoning items (micrograph transformations, molecular structures)"
"${microvqa[@]}" generate spatial --count 4
step "near-duplicate groups"
"${microvqa[@]}" run dedup
step "export (JSONL + images, leakage-free splits) to $export_dir"
"${microvqa[@]}" export "$export_dir" --format jsonl --overwrite --include-flagged
step "summary"
"${microvqa[@]}" funnel
"${microvqa[@]}" stats
end_step
echo "time per stage:"
printf '  %s\n' "${timings[@]}"
echo "demo finished in $((SECONDS / 60)) min $((SECONDS % 60)) s; store: $MICROVQA_STORE"

if [ "$open_tui" = 1 ] && [ -t 0 ] && [ -t 1 ]; then
  "${microvqa[@]}" tui
fi
