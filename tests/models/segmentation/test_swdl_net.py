"""SWDL-Net (``swdl_net``) and the plain V-Net (``vnet``): shapes, the DC path as inference, the difference
feedback, the Laplacian pyramid, the detached gates, parameter counts against counts computed here from the
published architecture, and input errors (the segmentation contract itself: tests/models/test_contracts.py)."""

from __future__ import annotations

import pytest
import torch

from medmodal.errors import ConfigError
from medmodal.models import create_model
from medmodal.models.segmentation.swdl_net import (DECODER_LAYERS, ENCODER_LAYERS, LaplacianPyramidUpsample,
                                                   SWDLNet, stratum_differences)

SIZE = (32, 32, 16)  # D, H, W
N = 4


def _model(name: str = "swdl_net", seed: int = 0, **kw) -> SWDLNet:
    torch.manual_seed(seed)
    return create_model(name, modalities=("ct",), num_classes=2, **{"n_filters": N, **kw})


def _x(batch: int = 2, seed: int = 1, size=SIZE, channels: int = 1) -> torch.Tensor:
    return torch.randn(batch, channels, *size, generator=torch.Generator().manual_seed(seed))


def _strata_shapes(batch: int, n: int, size) -> list[tuple]:
    """Encoder strata shapes, coarse -> fine."""
    return [(batch, n * 2 ** i, *(s // 2 ** i for s in size)) for i in reversed(range(5))]


def test_shapes_of_forward_and_forward_train():
    model = _model().train()
    out = model.forward_train(_x())
    assert out.dc.shape == out.lap.shape == (2, 2, *SIZE)
    assert len(out.sides) == 5 and all(s.shape == (2, 2, *SIZE) for s in out.sides)
    want = _strata_shapes(2, N, SIZE)
    assert [tuple(f.shape) for f in out.dc_features] == want
    assert [tuple(f.shape) for f in out.lap_features] == want
    assert model(_x()).shape == (2, 2, *SIZE)
    vnet = _model("vnet").train()
    plain = vnet.forward_train(_x())
    assert plain.dc.shape == (2, 2, *SIZE) and plain.lap is None and plain.sides == [] and plain.lap_features == []
    assert [tuple(f.shape) for f in plain.dc_features] == want


def test_forward_is_the_dc_decoder_in_eval_mode():
    model = _model().eval()
    with torch.no_grad():
        out = model.forward_train(_x())
        assert torch.equal(model(_x()), out.dc)
        mask = torch.tensor([[True], [True]])
        assert torch.equal(model(_x(), mask), out.dc)


def test_feedback_zero_changes_nothing_and_nonzero_changes_the_dc_output():
    model = _model().eval()
    with torch.no_grad():
        ref = model.forward_train(_x())
        zero = model.forward_train(_x(), feedback=[torch.zeros(s) for s in _strata_shapes(2, N, SIZE)])
        assert torch.equal(ref.dc, zero.dc) and torch.equal(ref.lap, zero.lap)
        fb = [torch.full(s, 0.5) for s in _strata_shapes(2, N, SIZE)]
        moved = model.forward_train(_x(), feedback=fb)
        assert not torch.allclose(ref.dc, moved.dc)
        # the feedback of the previous pass, as the copy's training loop runs it (3 passes)
        out = ref
        for _ in range(2):
            out = model.forward_train(_x(), feedback=model.stratum_differences(out))
        assert torch.isfinite(out.dc).all() and not torch.equal(out.dc, ref.dc)
    with pytest.raises(ValueError, match="5 tensors"):
        model.forward_train(_x(), feedback=fb[:4])
    with pytest.raises(ValueError, match=r"feedback\[0\] must have the shape"):
        model.forward_train(_x(), feedback=[fb[1], *fb[1:]])


def test_stratum_differences_are_detached_scaled_and_aligned():
    model = _model().train()
    out = model.forward_train(_x())
    diffs = model.stratum_differences(out)
    assert len(diffs) == 5
    for d, lap, dc in zip(diffs, out.lap_features, out.dc_features):
        assert not d.requires_grad and d.shape == dc.shape
        torch.testing.assert_close(d, 1e-3 * (lap - dc).detach())
    # the bottleneck difference is scale * x * sigmoid(x) (the boosted bottleneck minus the plain one)
    x5 = out.dc_features[0].detach()
    torch.testing.assert_close(diffs[0], 1e-3 * x5 * torch.sigmoid(x5))
    for a, b in zip(stratum_differences(out, scale=2.0), model.stratum_differences(out, scale=2.0)):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="Laplacian decoder"):
        stratum_differences(_model("vnet").forward_train(_x()))


@pytest.mark.parametrize("dims, shape", [(3, (2, 3, 16, 32, 24)), (3, (1, 2, 4, 8, 8)), (2, (2, 3, 32, 16))])
def test_laplacian_pyramid_reconstructs_exactly_with_gain_one(dims, shape):
    up = LaplacianPyramidUpsample(dims, detail_gain=1.0)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    levels = up.levels(shape[2:])
    assert levels >= 1
    for n in range(levels + 1):
        pyramid = up.decompose(x, n)
        assert len(pyramid) == n + 1 and min(pyramid[-1].shape[2:]) >= 2
        torch.testing.assert_close(up.reconstruct(pyramid), x, rtol=0, atol=1e-5)
    # gain 1: the Laplacian up-sampling is the plain x2 resize; gain 1.5 amplifies the details
    plain = up.resize(x, [2 * s for s in shape[2:]])
    torch.testing.assert_close(up(x), plain, rtol=0, atol=1e-5)
    sharp = LaplacianPyramidUpsample(dims, detail_gain=1.5)(x)
    assert sharp.shape == plain.shape and (sharp - plain).abs().max() > 1e-2


def test_pyramid_level_rule():
    up = LaplacianPyramidUpsample(3)
    assert [up.levels((s, s, s)) for s in (1, 2, 3, 4, 7, 8, 16, 64, 128, 1024)] == [0, 0, 0, 1, 1, 2, 3, 5, 5, 5]
    assert up.levels((4, 96, 96)) == 1 and LaplacianPyramidUpsample(3, max_levels=2).levels((64, 64, 64)) == 2
    x = torch.randn(1, 2, 1, 2, 2)  # a bottleneck-sized map: no pyramid, a plain resize
    torch.testing.assert_close(up(x), up.resize(x, (2, 4, 4)))


def test_gates_send_no_gradient_into_the_dc_decoder():
    model = _model().train()
    out = model.forward_train(_x())
    out.lap.square().mean().backward()
    for name, p in model.named_parameters():
        if name.startswith(("dc_decoder.", "side_heads.")):
            assert p.grad is None or not p.grad.any(), name
        elif name.startswith("encoder."):
            assert p.grad is not None
    assert any(p.grad is not None and p.grad.any() for p in model.lap_decoder.parameters())


def test_every_parameter_gets_a_gradient_from_the_full_objective():
    model = _model().train()
    x = _x().requires_grad_(True)
    out = model.forward_train(x)
    (out.dc.square().mean() + out.lap.square().mean() + sum(s.square().mean() for s in out.sides)).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _reference_count(n: int, cin: int, k: int, laplacian: bool) -> int:
    """Parameters of the published V-Net / SWDL-Net (conv with bias + BatchNorm), counted from the layout."""
    def conv(a, b, kernel):
        return a * b * kernel ** 3 + b

    def bn(c):
        return 2 * c

    w = [n * 2 ** i for i in range(5)]
    enc = sum(conv(cin if (i == 0 and j == 0) else w[i], w[i], 3) + bn(w[i])
              for i, layers in enumerate(ENCODER_LAYERS) for j in range(layers))
    enc += sum(conv(w[i], w[i + 1], 2) + bn(w[i + 1]) for i in range(4))

    def decoder(up_kernel):
        total = sum(conv(w[4 - i], w[3 - i], up_kernel) + bn(w[3 - i]) for i in range(4))
        total += sum(conv(w[3 - i], w[3 - i], 3) + bn(w[3 - i]) for i, layers in enumerate(DECODER_LAYERS)
                     for _ in range(layers))
        return total + conv(n, k, 1)

    total = enc + decoder(2)
    if laplacian:
        total += decoder(3) + sum(conv(c, k, 1) for c in w)
    return total


def test_parameter_counts_of_the_paper_configuration():
    torch.manual_seed(0)
    swdl = create_model("swdl_net", modalities=("ct",), num_classes=2)
    vnet = create_model("vnet", modalities=("ct",), num_classes=2)
    assert _count(swdl) == _reference_count(16, 1, 2, laplacian=True) == 12_348_718
    assert _count(vnet) == _reference_count(16, 1, 2, laplacian=False) == 9_448_866
    assert vnet.lap_decoder is None and not any(n.startswith(("lap_decoder", "side_heads"))
                                                for n, _ in vnet.named_parameters())
    assert vnet.config.laplacian_decoder is False and swdl.config.detail_gain == 1.5
    assert vnet.config.encoder_dropout == 0.5 and swdl.config.encoder_dropout == 0.3  # UA-MT's / SWDL's
    assert create_model("vnet", modalities=("ct",), num_classes=2, n_filters=N, encoder_dropout=0.3,
                        config={"encoder_dropout": 0.1}).config.encoder_dropout == 0.3
    assert swdl.config.feedback_scale == 1e-3 and swdl.config.sigma == 1.0 and swdl.config.dropout


def test_input_errors():
    model = _model().eval()
    with pytest.raises(ValueError, match=r"divisible by 16.*\(1, 1, 32, 24, 16\)"):
        model(torch.randn(1, 1, 32, 24, 16))
    with pytest.raises(ValueError, match=r"divisible by 16.*\(1, 1, 8, 32, 16\)"):
        model.forward_train(torch.randn(1, 1, 8, 32, 16))
    with pytest.raises(ValueError, match=r"images \[B, 1, D, H, W\]"):
        model(torch.randn(1, 2, *SIZE))
    with pytest.raises(ValueError, match=r"images \[B, 1, D, H, W\]"):
        model(torch.randn(1, *SIZE))
    two = create_model("swdl_net", modalities=("t1", "t2"), num_classes=2, n_filters=N).eval()
    with pytest.raises(ValueError, match="no sequence"):
        two(torch.randn(2, 2, *SIZE), torch.tensor([[True, False], [False, False]]))


@pytest.mark.parametrize("bad", [{"n_filters": 0}, {"sigma": 0.0}, {"blur_kernel": 4}, {"max_levels": 6},
                                 {"encoder_dropout": 1.0}, {"detail_gain": -1.0}, {"spatial_dims": 1}])
def test_config_errors(bad):
    with pytest.raises(ConfigError):
        create_model("swdl_net", modalities=("ct",), num_classes=2, **bad)


def test_vnet_refuses_the_laplacian_decoder():
    with pytest.raises(ConfigError, match="use swdl_net"):
        create_model("vnet", modalities=("ct",), num_classes=2, laplacian_decoder=True)
    with pytest.raises(ConfigError, match="use swdl_net"):
        create_model("vnet", modalities=("ct",), num_classes=2, config={"laplacian_decoder": True})
    assert create_model("swdl_net", modalities=("ct",), num_classes=2, n_filters=N,
                        laplacian_decoder=False).lap_decoder is None


def test_dropout_flag():
    model = _model(dropout=False).train()
    assert not any(isinstance(m, torch.nn.Dropout3d) for m in model.modules())
    with torch.no_grad():
        a, b = model.forward_train(_x()), model.forward_train(_x())
    assert torch.equal(a.dc, b.dc)  # no dropout: training passes are deterministic
    assert sum(isinstance(m, torch.nn.Dropout3d) for m in _model().modules()) == 3
