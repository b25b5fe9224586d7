"""A real 2-process DDP run (CPU, gloo) of ``medmodal pretrain``: the replicas end with identical
weights (k-means centroids included: DDP broadcasts rank 0's buffers) and only global rank 0 prints
and writes into the run folder. Same probe as ``tests/engine/segmentation/test_ddp.py``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tests.engine.ddp_probe import WRITE_RECORDER
from tests.engine.image_text.conftest import tiny_overrides

DRIVER = WRITE_RECORDER + textwrap.dedent('''
    import torch
    from lightning.pytorch.callbacks import Callback
    import medmodal.engine.image_text.train as train

    class SaveReplica(Callback):
        def on_fit_end(self, trainer, module):
            state = {k: v.detach().cpu().clone() for k, v in module.model.state_dict().items()}
            torch.save(state, probe / f"replica-{trainer.global_rank}.pt")

    make = train.make_trainer
    train.make_trainer = lambda *a, extra_callbacks=(), **k: make(*a, extra_callbacks=(*extra_callbacks, SaveReplica()),
                                                                  **k)

    from medmodal.cli import app
    app(sys.argv[2:], prog_name="medmodal")
''')


@pytest.mark.slow
def test_two_process_pretraining(synth_iu, tmp_path):
    run, probe = tmp_path / "run", tmp_path / "probe"
    probe.mkdir()
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    sets = [s for item in tiny_overrides(synth_iu, run) + ["trainer.devices=2", "data.batch_size=4"]
            for s in ("--set", item)]
    done = subprocess.run([sys.executable, str(driver), str(probe), "pretrain", "--preset", "pretrain_demo_cpu",
                           *sets], capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    output = done.stdout + done.stderr
    assert output.count("run folder:") == 1, output[-2000:]
    assert "sync_dist" not in output and "Traceback" not in output, output[-2000:]

    replicas = [torch.load(probe / f"replica-{r}.pt", weights_only=True) for r in (0, 1)]
    assert replicas[0].keys() == replicas[1].keys()
    assert int(replicas[0]["kmeans.initialized"]) == 1
    different = [k for k in replicas[0] if not torch.equal(replicas[0][k], replicas[1][k])]
    assert not different, different[:5]

    writes = {0: set(), 1: set()}
    for path in probe.glob("writes-*.txt"):
        writes[int(path.name.split("-")[1])] |= {Path(p) for p in path.read_text().split()}
    run = run.resolve()
    in_run = {r: {p for p in paths if p.is_relative_to(run)} for r, paths in writes.items()}
    assert {p.name for p in in_run[0]} >= {"config.yaml", "last.ckpt", "metrics.csv", "model.safetensors",
                                           "metrics.json", "report.md"}
    assert not in_run[1], sorted(str(p) for p in in_run[1])[:10]
    assert json.loads((run / "metrics.json").read_text())["evaluation"]["pretrained"]["retrieval"]["n"] > 0
