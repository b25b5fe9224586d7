#!/usr/bin/env bash
# Third GPU round for issue 5: the training step compiled as one graph (forward + whole loss),
# with and without CUDA graphs, against the reference-style fp32 loop; then the evaluation figures.
# Each variant is skipped when its table exists, so the script can be re-run across device calls
# (one call is limited to 10 minutes).   Usage: bash benchmarks/gpu_round3.sh [OUT]
set -uo pipefail
out=${1:-runs/gpu_round3}; mkdir -p "$out"; export PYTHONUNBUFFERED=1
variant() {  # name, then bench-speed options
  local name=$1; shift
  [ -s "$out/$name.txt" ] && { cat "$out/$name.txt"; return; }
  echo "== $name: bench-speed $*"
  timeout 420 python3 -m medmodal.cli bench-speed --peak-tflops 989 --out "$out/$name.json" "$@" 2>&1 \
    | grep -E "^\||^device|Error|error" | tee "$out/$name.tmp" && mv "$out/$name.tmp" "$out/$name.txt"
}
variant compiled_cudagraphs --compile --compile-mode reduce-overhead --no-evaluate
variant compiled --compile --no-evaluate
variant eager_with_evaluation
variant compiled_cudagraphs_batch2 --compile --compile-mode reduce-overhead --batch-size 2 --no-evaluate
