"""MSLAU-Net: shapes on non-square inputs, the linear attention's formula, the release's variants, the
ablations and the one-line config errors (the segmentation contract itself: tests/test_families_sweep.py)."""

import pytest
import torch

from medmodal.errors import ConfigError
from medmodal.models import create_model
from medmodal.models.segmentation.mslau_net import (LinearAttention, MSLAUNet, MultiScaleLinearAttention,
                                                    _to_map, _to_tokens)

TINY = {"widths": (8, 16, 32, 32), "depths": (1, 1, 2, 1), "head_dim": 8, "decoder_channels": 8}


def test_any_size_divisible_by_32_and_the_paper_widths():
    model = create_model("mslau_net", modalities=("image",), num_classes=4, **TINY).eval()
    x = torch.randn(2, 1, 64, 96)
    assert model(x).shape == (2, 4, 64, 96)
    with pytest.raises(ValueError, match="divisible by 32"):
        model(torch.randn(1, 1, 48, 64))
    with pytest.raises(ValueError, match=r"images \[B, 1, H, W\]"):
        model(torch.randn(1, 3, 64, 64))
    paper = MSLAUNet(("image",), 9)
    assert paper.config.widths == (64, 128, 256, 512) and paper.config.depths == (4, 8, 11, 5)
    assert [len(s) for s in paper.encoder["stages"]] == [4, 8, 11, 5]
    msla = paper.encoder["stages"][2][0].attention
    assert [c.kernel_size[0] for c in msla.convs] == [3, 5, 7, 9] and len(msla.attentions) == 4


def test_linear_attention_is_efficient_attention():
    """out = proj(softmax_over_channels(Q) @ (softmax_over_positions(K)^T @ V)) per head (Shen et al.)."""
    torch.manual_seed(0)
    attention = LinearAttention(8, heads=2).eval()
    tokens = torch.randn(3, 10, 8)
    q, k, v = attention.qkv(tokens).reshape(3, 10, 3, 2, 4).unbind(2)  # [B, N, heads, d]
    q, k = q.softmax(-1), k.softmax(1)
    context = torch.einsum("bnhd,bnhe->bhde", k, v)
    want = attention.proj(torch.einsum("bnhd,bhde->bnhe", q, context).reshape(3, 10, 8))
    assert torch.allclose(attention(tokens), want, atol=1e-6)
    # the release's axes give another result from the same weights
    release = LinearAttention(8, heads=2, release_softmax_axes=True)
    release.load_state_dict(attention.state_dict())
    assert not torch.allclose(release(tokens), want, atol=1e-4)


def test_token_map_round_trip_and_the_release_reshape():
    tokens = torch.randn(2, 6 * 4, 5)
    grid = _to_map(tokens, (6, 4), raw=False)
    assert torch.equal(grid[1, 3, 2, 1], tokens[1, 2 * 4 + 1, 3])  # channel 3 at row 2, column 1
    assert torch.equal(_to_tokens(grid, raw=False), tokens)
    raw = _to_map(tokens, (6, 4), raw=True)
    assert torch.equal(_to_tokens(raw, raw=True), tokens) and not torch.equal(raw, grid)
    torch.manual_seed(0)
    ours, release = MultiScaleLinearAttention(8, 1), MultiScaleLinearAttention(8, 1, release_reshape=True)
    release.load_state_dict(ours.state_dict())
    x = torch.randn(2, 6 * 4, 8)
    assert ours(x, (6, 4)).shape == release(x, (6, 4)).shape == x.shape
    assert not torch.allclose(ours(x, (6, 4)), release(x, (6, 4)), atol=1e-4)


def test_shared_attention_and_ablations_build_and_run():
    x = torch.randn(1, 1, 64, 64)
    shared = MSLAUNet(("image",), 3, TINY, shared_attention=True).eval()
    assert len(shared.encoder["stages"][2][0].attention.attentions) == 1
    single = MSLAUNet(("image",), 3, TINY, attention="single_scale").eval()
    assert len(single.encoder["stages"][2][0].attention.convs) == 1
    conv = MSLAUNet(("image",), 3, TINY, attention="conv").eval()
    assert not any(isinstance(m, MultiScaleLinearAttention) for m in conv.modules())
    for model in (shared, single, conv):
        assert model(x).shape == (1, 3, 64, 64)


@pytest.mark.parametrize("overrides, message", [
    ({"widths": (8, 16, 32)}, "4 stages"),
    ({"attention": "softmax"}, "attention must be one of"),
    ({"widths": (8, 16, 34, 32)}, "stage width 34 must split into 4 group"),
    ({"kernels": (3, 4)}, "odd positive"),
    ({"spatial_dims": 3}, "2-D"),
    ({"heads": 2}, "unknown MSLAUNetConfig option"),
])
def test_bad_options_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        MSLAUNet(("image",), 2, **overrides)
