#!/usr/bin/env bash
# On one GPU: the DMAF-Net training step compiled as one graph (forward + whole loss),
# with and without CUDA graphs, against the reference-style fp32 loop; then the evaluation figures.
# Each variant is skipped when its table exists, so the script can be re-run across device calls
# (one call is limited to 10 minutes); then the real engine, eager vs compiled with CUDA graphs.
# Usage: bash benchmarks/gpu_compiled_step.sh [OUT]
set -uo pipefail
out=${1:-runs/gpu_compiled_step}; mkdir -p "$out"; export PYTHONUNBUFFERED=1
variant() {  # name, then bench-speed options
  local name=$1; shift
  [ -s "$out/$name.txt" ] && { cat "$out/$name.txt"; return; }
  echo "== $name: bench-speed $*"
  timeout 420 python3 -m medmodal seg speed --peak-tflops 989 --out "$out/$name.json" "$@" 2>&1 \
    | grep -E "^\||^device|Error|error" | tee "$out/$name.tmp" && mv "$out/$name.tmp" "$out/$name.txt"
}
# the compiled step + DTM make no host-device synchronisation (pytest: carry its wheels in .whl/)
[ -s "$out/no_sync.txt" ] || timeout 300 python3 -m pytest -q -p no:cacheprovider tests/engine/test_module.py \
  -k never_wait 2>&1 | tail -3 | tee "$out/no_sync.txt"
variant compiled_cudagraphs --compile --compile-mode reduce-overhead --no-evaluate
variant compiled --compile --no-evaluate
variant eager_with_evaluation
variant compiled_cudagraphs_batch2 --compile --compile-mode reduce-overhead --batch-size 2 --no-evaluate

# The real Lightning engine (what `medmodal seg train` users get), eager vs the compiled one-graph
# step with CUDA graphs: bf16-mixed, channels_last_3d, DTM on, no validation; steps/s per epoch
# from the run's metrics.csv (epoch 0 includes compilation and worker start-up).
engine() {  # name, then extra --set options
  local name=$1; shift
  [ -s "$out/$name.txt" ] && { cat "$out/$name.txt"; return; }
  [ -d /tmp/synth128 ] || python3 -m medmodal seg synth --dataset brats2020 /tmp/synth128 --cases 16 --size 128 >/dev/null
  echo "== $name"
  timeout 420 python3 -m medmodal seg train --preset train_dmafnet_brats2020 --data /tmp/synth128 --out "/tmp/$name" \
    --resume never --set trainer.max_epochs=3 --set data.samples_per_epoch=150 --set data.num_workers=12 \
    --set trainer.val_every_n_epochs=100 --set trainer.progress_bar=false --set trainer.channels_last=true "$@" >"$out/$name.log" 2>&1
  python3 - "/tmp/$name/logs/metrics.csv" "$name" >"$out/$name.tmp" <<'PY' && mv "$out/$name.tmp" "$out/$name.txt"
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r.get("train/steps_per_s")]
print(sys.argv[2] + ": " + ", ".join(f"epoch {r['epoch']}: {float(r['train/steps_per_s']):.2f} steps/s" for r in rows))
PY
  cat "$out/$name.txt" 2>/dev/null || tail -5 "$out/$name.log"
}
engine engine_eager
engine engine_compiled_cudagraphs --set trainer.compile=true --set trainer.compile_mode=reduce-overhead
