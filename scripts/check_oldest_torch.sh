#!/usr/bin/env bash
# Check that medmodal installs and runs with the oldest torch / torchvision pair pyproject.toml allows.
#
#   scripts/check_oldest_torch.sh [TORCH TORCHVISION]      (default: 2.6.0 0.21.0, CPU builds)
#   make check-oldest
#
# Makes a fresh venv ($VENV, default /tmp/medmodal-oldest-torch), installs that torch / torchvision pair
# from the PyTorch CPU index first, then medmodal from this checkout with the pair pinned (pip keeps it),
# verifies torch was kept, and runs every family's smoke steps (medmodal.cli.family.Family.smoke: tiny
# synthetic data, one short training run per family: seg train, cxr pretrain, endoscopy pretrain) on
# the CPU. Needs the network (PyPI and download.pytorch.org; TORCH_INDEX=pypi takes the pair from PyPI,
# CUDA builds, ~3 GB). Exit code 0: the pair works.
set -euo pipefail
TORCH=${1:-2.6.0}
TORCHVISION=${2:-0.21.0}
VENV=${VENV:-/tmp/medmodal-oldest-torch}
INDEX=${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
HERE=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
start=$(date +%s)

"$PYTHON" -m venv --clear "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
echo "== torch $TORCH + torchvision $TORCHVISION from $INDEX"
if [ "$INDEX" = pypi ]; then  # PyPI's builds (CUDA on Linux x86-64; they run on the CPU too)
  "$VENV/bin/python" -m pip install -q "torch==$TORCH" "torchvision==$TORCHVISION"
else
  "$VENV/bin/python" -m pip install -q "torch==$TORCH" "torchvision==$TORCHVISION" --index-url "$INDEX"
fi
pins="$VENV/pins.txt"
"$VENV/bin/python" -c "from importlib.metadata import version as v; print(f'torch=={v(\"torch\")}'); print(f'torchvision=={v(\"torchvision\")}')" > "$pins"
echo "== medmodal from $HERE with $(tr '\n' ' ' < "$pins")pinned"
"$VENV/bin/python" -m pip install -q -c "$pins" "$HERE"
"$VENV/bin/python" - "$pins" <<'PY'
import sys
from importlib.metadata import version
import torch, torchvision, medmodal  # noqa: F401 - they import
want = dict(line.strip().split("==") for line in open(sys.argv[1]) if line.strip())
have = {"torch": version("torch"), "torchvision": version("torchvision")}
assert have == want, f"pip replaced the pair: {have} != {want}"
print("kept:", have)
PY
echo "== smoke steps of every family"
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} "$VENV/bin/python" - <<'PY'
import subprocess, sys, tempfile, time
from pathlib import Path
from medmodal.cli.family import FAMILIES
import medmodal.cli.main  # noqa: F401 - registers the built-in families

medmodal = str(Path(sys.executable).parent / "medmodal")
for family in FAMILIES:
    with tempfile.TemporaryDirectory() as out:
        for words in family.smoke:
            args = [w.replace("{out}", out) for w in words]
            t = time.time()
            done = subprocess.run([medmodal, *args], capture_output=True, text=True)
            print(f"{time.time() - t:6.1f} s  exit {done.returncode}  medmodal {' '.join(args[:2])}", flush=True)
            if done.returncode:
                sys.exit(f"failed: medmodal {' '.join(args)}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
PY
"$VENV/bin/python" -m pip list 2>/dev/null | grep -iE "^(torch|torchvision|lightning|monai|timm|transformers|numpy|segmentation.models.pytorch|torchmetrics) " || true
echo "== OK: torch $TORCH / torchvision $TORCHVISION, $(( $(date +%s) - start )) s"
