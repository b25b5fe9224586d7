"""A tiny synthetic IU-layout dataset (real IU reports) and a tiny pre-training config for CPU tests."""

from __future__ import annotations

import pytest

from medmodal.data.cxr.synthetic import synth_cxr
from medmodal.engine.image_text.config import load_pretrain_config

#: a 1-layer BERT (random init, MiniLM's vocabulary so the shipped tokenizer fits it), 32-d embeddings,
#: 4 clusters seeded in the first step (activation threshold 1.0), a small CM-MIR decoder
TINY_MODEL = {"image_encoder": "resnet18", "embed_dim": 32, "text_pool_heads": 4, "decoder_heads": 4,
              "num_clusters": 4, "kmeans_activation_cosine": 1.0, "decoder_channels": [8, 8],
              "text_model_config": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                    "intermediate_size": 64}}


def tiny_overrides(root, out) -> list[str]:
    import json

    return [f"data.root={root}", f"out_dir={out}", "data.image_size=64", "data.max_length=48", "data.batch_size=8",
            "data.num_workers=0", f"model.kwargs={json.dumps(TINY_MODEL)}", "trainer.stage1_epochs=1",
            "trainer.stage2_epochs=1", "trainer.accelerator=cpu", "trainer.devices=1", "trainer.precision=32-true",
            "trainer.progress_bar=false", "trainer.log_every_n_steps=1", "optim.lr=1e-3", "model.freeze=[]"]


@pytest.fixture(scope="session")
def synth_iu(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_iu") / "data"
    synth_cxr(root, 30, seed=0, size=64)
    return root


@pytest.fixture
def tiny_config(synth_iu, tmp_path):
    def make(*extra: str, out=None):
        return load_pretrain_config(preset="pretrain_demo_cpu",
                                    overrides=tiny_overrides(synth_iu, out or tmp_path / "run") + list(extra))

    return make
