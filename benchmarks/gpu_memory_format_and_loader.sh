#!/usr/bin/env bash
# On one GPU: DMAF-Net train-step time with and without channels-last (batch 1 and 4), data-loader throughput,
# `medmodal seg speed` with and without channels-last, a one-epoch engine run and its evaluation.
set -uo pipefail
out=${1:-runs/gpu_memory_format_and_loader}; mkdir -p "$out"; export PYTHONUNBUFFERED=1
for cl in 0 1; do timeout 90 python3 benchmarks/profile_train.py --batches 1,4 --channels-last $cl --profile 0 2>&1 | grep batch; done | tee "$out/variants.txt"
python3 -m medmodal seg synth --dataset brats2020 /tmp/s96 --cases 12 --size 96 >/dev/null
timeout 60 python3 benchmarks/dataloader_speed.py /tmp/s96 --workers 12 --batches 200 2>&1 | tail -1 | tee "$out/dataloader.txt"
timeout 150 python3 -m medmodal seg speed --peak-tflops 989 --no-channels-last --out "$out/speed_nocl.json" 2>&1 | grep "|" | tee "$out/speed_nocl.txt"
timeout 150 python3 -m medmodal seg speed --peak-tflops 989 --out "$out/speed_cl.json" 2>&1 | grep "|" | tee "$out/speed_cl.txt"
start=$(date +%s)
timeout 150 python3 -m medmodal seg train --preset train_dmafnet_brats2020 --data /tmp/s96 --out /tmp/gpu_run --resume never \
  --set trainer.max_epochs=1 --set data.samples_per_epoch=200 --set data.num_workers=12 --set trainer.precision=bf16-mixed \
  --set trainer.val_every_n_epochs=1 --set trainer.progress_bar=false --set eval.et_min_voxels=0 2>&1 | grep -v Warn | tail -4
echo "engine: 1 epoch x 200 crops 80^3 + validation: $(( $(date +%s) - start )) s" | tee "$out/engine.txt"
start=$(date +%s)
timeout 90 python3 -m medmodal seg evaluate /tmp/gpu_run --split test --no-progress 2>&1 | grep -v Warn | tail -22 | tee -a "$out/engine.txt"
echo "evaluate: $(( $(date +%s) - start )) s" | tee -a "$out/engine.txt"
