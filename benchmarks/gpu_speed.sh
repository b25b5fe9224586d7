#!/usr/bin/env bash
# DMAF-Net speed figures on one GPU: `bash benchmarks/gpu_speed.sh OUT_DIR`.
# 1) medmodal seg speed (eager fast path), 2) the same with --compile, 3) the real Lightning engine:
#    a short DMAF-Net training on synthetic 128^3 cases (bf16-mixed + channels_last_3d) and the
#    15-subset evaluation of its test cases, timed end to end.
set -uo pipefail
out=${1:-runs/gpu_speed}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/device.txt"
$py -c "import torch, monai, lightning; print('torch', torch.__version__, 'monai', monai.__version__, 'lightning', lightning.__version__)" | tee -a "$out/device.txt"

if [ "${SKIP_BENCH:-0}" != 1 ]; then
  timeout 240 $py -m medmodal seg speed --peak-tflops 989 --out "$out/speed_eager.json" 2>&1 | tee "$out/speed_eager.txt"
  timeout 300 $py -m medmodal seg speed --peak-tflops 989 --compile --out "$out/speed_compile.json" 2>&1 | tee "$out/speed_compile.txt"
fi
cases=${CASES:-24}; size=${SIZE:-128}; epochs=${EPOCHS:-3}; samples=${SAMPLES:-250}

if [ "${SKIP_ENGINE:-0}" != 1 ]; then
  data=/tmp/synth128
  $py -m medmodal seg synth --dataset brats2020 "$data" --cases "$cases" --size "$size" >/dev/null
  start=$(date +%s)
  timeout 300 $py -m medmodal seg train --preset train_dmafnet_brats2020 --data "$data" --out /tmp/gpu_run --resume never \
    --set trainer.max_epochs="$epochs" --set data.samples_per_epoch="$samples" --set data.num_workers=12 \
    --set trainer.precision=bf16-mixed --set trainer.channels_last=true --set trainer.val_every_n_epochs="$epochs" \
    --set trainer.progress_bar=false --set trainer.log_every_n_steps=25 --set eval.et_min_voxels=0 2>&1 | tail -8
  echo "engine train wall: $(( $(date +%s) - start )) s ($epochs epochs x $samples crops of 80^3 + 1 validation, $cases cases of ${size}^3)" | tee "$out/engine.txt"
  cp /tmp/gpu_run/logs/metrics.csv "$out/engine_metrics.csv" 2>/dev/null
  start=$(date +%s)
  timeout 200 $py -m medmodal seg evaluate /tmp/gpu_run --split test 2>&1 | tail -25 | tee -a "$out/engine.txt"
  echo "engine evaluate wall: $(( $(date +%s) - start )) s" | tee -a "$out/engine.txt"
fi
