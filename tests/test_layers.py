"""The import-linter layers contract (``.importlinter``): cli > experiments > engine > evaluation > inference >
losses > models > layers > data > errors / notices / io / distributed / config."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


# xfail until the branches of issue 24 are merged (evaluation/report.py and evaluator.py still import
# engine/segmentation/inference.py and engine/checkpoint.py; the "errors" branch moves them below)
@pytest.mark.xfail(strict=False, reason="evaluation -> engine imports left until the issue-24 branches merge")
def test_layers_contract_holds():
    pytest.importorskip("importlinter")
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if command is None:
        pytest.skip("lint-imports not installed (pip install import-linter; it is in the test extra)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([command, "--no-cache"], cwd=ROOT, env=env,  # reads ROOT/.importlinter
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
