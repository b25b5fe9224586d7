"""A real 2-process DDP run (CPU, gloo) of ``medmodal train``: the replicas end with identical
weights and DTM state, and only global rank 0 prints and writes into the run folder.

The command runs through a small driver script (Lightning's launcher re-executes it for rank 1)
that records, per process, every file opened for writing, created or renamed, and saves each
replica's final state into the test's own folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from medmodal.data.volumes.synthetic_brats import synth_brats
from tests.engine.ddp_probe import WRITE_RECORDER

DRIVER = WRITE_RECORDER + textwrap.dedent('''
    import torch
    from lightning.pytorch.callbacks import Callback
    import medmodal.engine.segmentation.train as train

    class SaveReplica(Callback):
        def on_fit_end(self, trainer, module):
            state = {k: v.detach().cpu() for k, v in module.model.state_dict().items()}
            state.update({f"dtm.{k}": torch.as_tensor(v).cpu() for k, v in module.dtm.state_dict().items()
                          if isinstance(v, torch.Tensor)})
            torch.save(state, probe / f"replica-{trainer.global_rank}.pt")

    build = train.build_trainer
    train.build_trainer = lambda cfg, run_dir, extra=(): build(cfg, run_dir, (*extra, SaveReplica()))

    from medmodal.cli import app
    app(sys.argv[2:], prog_name="medmodal")
''')


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    data, run, probe = root / "data", root / "run", root / "probe"
    probe.mkdir()
    synth_brats(data, num_cases=6, size=24, seed=0)
    driver = root / "driver.py"
    driver.write_text(DRIVER)
    tiny = json.dumps({"widths": [4, 8, 16], "token_grid": 2, "num_heads": 2, "depth": 1})
    args = ["train", "--preset", "demo_cpu", "--data", str(data), "-o", str(run),
            "--set", "trainer.max_epochs=2", "--set", "trainer.devices=2", "--set", "trainer.accelerator=cpu",
            "--set", "trainer.val_every_n_epochs=1", "--set", "data.samples_per_epoch=4",
            "--set", "data.num_workers=0", "--set", f"model.kwargs={tiny}",
            "--set", "data.crop_size=[16,16,16]", "--set", "eval.roi_size=[16,16,16]",
            "--set", "data.split_fractions=[0.5,0.17,0.33]"]
    done = subprocess.run([sys.executable, str(driver), str(probe), *args], capture_output=True, text=True,
                          timeout=600, cwd=root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done, run, probe


def test_replicas_end_with_identical_weights(ddp_run):
    _, _, probe = ddp_run
    replicas = [torch.load(probe / f"replica-{r}.pt", weights_only=True) for r in (0, 1)]
    assert replicas[0].keys() == replicas[1].keys()
    assert any(k.startswith("dtm.") for k in replicas[0])
    different = [k for k in replicas[0] if not torch.equal(replicas[0][k], replicas[1][k])]
    assert not different, different[:5]
    # the two processes trained on different crops (EpochSampler shards them): equal weights need
    # the gradient all-reduce, and equal DTM state needs the gathered gaps
    assert all(torch.isfinite(v.float()).all() for v in replicas[0].values())


def test_only_rank_zero_prints_and_writes(ddp_run):
    done, run, probe = ddp_run
    output = done.stdout + done.stderr
    assert output.count("run folder:") == 1, output[-2000:]
    assert "sync_dist" not in output, output[-2000:]  # epoch-level logs are synchronised
    assert "Traceback" not in output
    writes = {0: set(), 1: set()}
    for path in probe.glob("writes-*.txt"):
        rank = int(path.name.split("-")[1])
        writes[rank] |= {Path(p) for p in path.read_text().split()}
    run = run.resolve()
    in_run = {r: {p for p in paths if p.is_relative_to(run)} for r, paths in writes.items()}
    assert in_run[0], "rank 0 recorded no write: the probe is broken"
    assert {p.name for p in in_run[0]} >= {"config.yaml", "last.ckpt", "metrics.csv", "model.safetensors"}
    assert not in_run[1], sorted(str(p) for p in in_run[1])[:10]
    assert (run / "model" / "model.safetensors").is_file()
