"""Training-module speed options (channels_last_3d) keep the maths unchanged."""

import torch

from medmodal.config import load_config, packaged_config
from medmodal.engine.module import SegmentationModule
from medmodal.models import create_model
from medmodal.models.blocks import to_channels_last_3d

TINY = {"widths": [4, 8, 16], "token_grid": 2, "num_heads": 2, "depth": 1}


def test_to_channels_last_3d_converts_conv_kernels_only():
    torch.manual_seed(0)
    model = create_model("dmafnet", modalities=("a", "b"), num_classes=3, **TINY).eval()
    x, mask = torch.randn(1, 2, 16, 16, 16), torch.tensor([[True, False]])
    before = model(x, mask)
    to_channels_last_3d(model)
    kernels = [p for p in model.parameters() if p.dim() == 5]
    assert kernels and all(p.is_contiguous(memory_format=torch.channels_last_3d) for p in kernels)
    assert torch.allclose(model(x.contiguous(memory_format=torch.channels_last_3d), mask), before, atol=1e-5)


def test_module_setup_applies_channels_last_and_trains():
    cfg = load_config(packaged_config("demo_cpu"), ["trainer.channels_last=true", f"model.kwargs={TINY}"])
    module = SegmentationModule.from_experiment(cfg)
    module.setup("fit")
    assert all(p.is_contiguous(memory_format=torch.channels_last_3d) for p in module.model.parameters() if p.dim() == 5)
    batch = {"image": torch.randn(2, 4, 16, 16, 16), "modality_mask": torch.tensor([[1, 0, 1, 1], [0, 1, 0, 0]]).bool(),
             "label": torch.randint(0, 4, (2, 1, 16, 16, 16))}
    outputs = module.model.forward_train(module._images(batch), batch["modality_mask"])
    loss, _, _ = module.criterion(outputs, batch["label"])
    loss.backward()
    assert torch.isfinite(loss) and module.model.encoders[0].parameters().__next__().grad is not None
