"""Checkpoints are input: loading never runs pickled code, and bad files give clear errors."""

import os
import pickle

import pytest
import torch

from medmodal.errors import CheckpointError
from medmodal.models.bundles import check_modalities, load_model

MARKER_ENV = "MEDMODAL_PWNED_MARKER"


class _Exploit:
    """Unpickling this would create a marker file (stand-in for arbitrary code execution)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _Exploit(marker)}, evil)
    with pytest.raises(CheckpointError, match=r"evil.ckpt: refused: .*pickled code is never run"):
        load_model(evil)
    assert not marker.exists()
    # plain pickle too
    evil2 = tmp_path / "evil2.ckpt"
    evil2.write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(CheckpointError):
        load_model(evil2)
    assert not marker.exists()


def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.ckpt"
    junk.write_text("definitely not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.ckpt: damaged or incomplete checkpoint"):
        load_model(junk)
    weights_only = tmp_path / "plain.ckpt"
    torch.save({"weights": torch.zeros(2)}, weights_only)
    with pytest.raises(CheckpointError, match="plain.ckpt: not a medmodal checkpoint"):
        load_model(weights_only)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_model(tmp_path / "missing.ckpt")
    (tmp_path / "folder").mkdir()
    with pytest.raises(CheckpointError, match="no model bundle"):
        load_model(tmp_path / "folder")


def test_bundle_with_corrupt_weights(tmp_path):
    bundle = tmp_path / "model"
    bundle.mkdir()
    (bundle / "model.json").write_text('{"model_name": "dmafnet", "modalities": ["flair"], "num_classes": 4}')
    (bundle / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="model.safetensors: damaged or incomplete safetensors file"):
        load_model(bundle)


def test_sequences_must_match_the_model():
    meta = {"modalities": ["bssfp", "lge", "t2"]}
    with pytest.raises(CheckpointError, match=r"sequences \['flair', 't1ce'\] do not match"):
        check_modalities(meta, ["flair", "t1ce"], "case X")
    check_modalities(meta, ["lge"], "case Y")


def test_a_runs_checkpoints_folder_means_its_last_ckpt(tmp_path):
    """``-m run/checkpoints`` used to fail with "no ... checkpoints/last.ckpt inside" beside a last.ckpt."""
    from medmodal.models.bundles import resolve_checkpoint

    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "best.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"pass one of its checkpoints, e\.g\. .*best\.ckpt"):
        resolve_checkpoint(folder)
    (folder / "last.ckpt").write_bytes(b"")
    assert resolve_checkpoint(folder) == folder / "last.ckpt"
    assert resolve_checkpoint(tmp_path / "run") == folder / "last.ckpt"


def test_old_import_path_reexports_the_bundle_module():
    """``medmodal.engine.checkpoint`` (the old path, kept one release) re-exports :mod:`medmodal.models.bundles`."""
    import medmodal.engine.checkpoint as old
    import medmodal.models.bundles as new

    assert old.load_model is new.load_model and old.save_bundle is new.save_bundle
    assert old.CheckpointError is CheckpointError
