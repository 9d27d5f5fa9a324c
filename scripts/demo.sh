#!/usr/bin/env bash
# The main job on the embedded sample: set up, ingest, run the pipeline stages, summarise,
# then open the TUI (when run in a terminal; pass --no-tui to skip it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export MICROVQA_STORE=${MICROVQA_STORE:-$PWD/.microvqa/sample-store}
microvqa=(.venv/bin/microvqa)
open_tui=1
for arg in "$@"; do [ "$arg" = --no-tui ] && open_tui=0; done

echo "== doctor"
"${microvqa[@]}" doctor
echo "== ingest the embedded sample into $MICROVQA_STORE"
"${microvqa[@]}" ingest assets/sample/manifest.jsonl
echo "== summary"
"${microvqa[@]}" stats

if [ "$open_tui" = 1 ] && [ -t 0 ] && [ -t 1 ]; then
  "${microvqa[@]}" tui
fi
