"""The 2-D baselines of the MSLAU-Net comparison: the SSL4MIS U-Net (``unet2d``), TransUNet (``transunet``) and
Swin-UNet (``swin_unet``). Shapes on non-square inputs, parameter counts of the paper configurations against
counts computed here from the published architectures, the position-embedding resampling, gradients, the
no-sequence error and TransUNet's local trunk weights (the segmentation contract itself: tests/models/
test_contracts.py)."""

import pytest
import timm
import torch
import torch.nn.functional as F

from medmodal.errors import CheckpointError, ConfigError, InputError
from medmodal.models import create_model
from medmodal.models.segmentation.swin_unet import PatchExpand, SwinUNet
from medmodal.models.segmentation.transunet import TransUNet
from medmodal.models.segmentation.unet2d import UNet2D

SMALL_TRUNK = {"layers": (1, 1, 1, 1), "channels": (8, 16, 32, 64)}
TINY = {
    "unet2d": {"widths": (4, 8, 16, 32, 64)},
    "transunet": {"backbone": "resnet18", "backbone_kwargs": SMALL_TRUNK, "img_size": 32, "hidden_size": 32,
                  "depth": 2, "num_heads": 2, "head_channels": 16, "decoder_channels": (16, 8, 8, 4)},
    "swin_unet": {"img_size": 64, "embed_dim": 8, "depths": (2, 2, 2, 2), "num_heads": (1, 1, 2, 2), "window_size": 4},
}
DIVISOR = {"unet2d": 16, "transunet": 16, "swin_unet": 32}


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(TINY))
def test_non_square_shapes_and_input_errors(name):
    torch.manual_seed(0)
    model = create_model(name, modalities=("t1", "t2"), num_classes=3, **TINY[name]).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 2, 64, 96)).shape == (2, 3, 64, 96)
        assert model(torch.randn(1, 2, 96, 64), torch.tensor([[False, True]])).shape == (1, 3, 96, 64)
    bad = 64 + DIVISOR[name] // 2
    with pytest.raises(ValueError, match=f"divisible by {DIVISOR[name]}"):
        model(torch.randn(1, 2, bad, 64))
    with pytest.raises(ValueError, match=r"images \[B, 2, H, W\]"):
        model(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r"images \[B, 2, H, W\]"):
        model(torch.randn(2, 64, 64))
    with pytest.raises(ValueError, match="no sequence"):
        model(torch.randn(2, 2, 64, 64), torch.tensor([[True, False], [False, False]]))


@pytest.mark.parametrize("name", sorted(TINY))
def test_gradients_reach_every_parameter_and_never_an_absent_input(name):
    torch.manual_seed(0)
    model = create_model(name, modalities=("t1", "t2"), num_classes=3, **TINY[name]).train()
    x = torch.randn(2, 2, 64, 64, requires_grad=True)
    mask = torch.tensor([[True, False], [True, True]])
    F.cross_entropy(model(x, mask), torch.randint(0, 3, (2, 64, 64))).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing
    assert torch.count_nonzero(x.grad[0, 1]) == 0 and torch.count_nonzero(x.grad[1, 1]) > 0


def _ssl4mis_unet_params(cin: int, k: int, f=(16, 32, 64, 128, 256)) -> int:
    """SSL4MIS ``UNet`` (conv-BN-LeakyReLU blocks, 1x1 conv + bilinear up, 3x3 head), counted by hand."""
    def block(i, o):  # two 3x3 convolutions with bias, two BatchNorms
        return 9 * i * o + o + 2 * o + 9 * o * o + o + 2 * o
    total = block(cin, f[0]) + sum(block(f[i - 1], f[i]) for i in range(1, 5))
    total += sum(f[i] * f[i - 1] + f[i - 1] + block(2 * f[i - 1], f[i - 1]) for i in range(4, 0, -1))
    return total + 9 * f[0] * k + k


def test_unet2d_is_the_ssl4mis_network():
    model = UNet2D(("image",), 4)
    assert _count(model) == _ssl4mis_unet_params(1, 4) == 1_813_764
    rates = [model.net.conv_0.conv_0.adn.D.p] + [getattr(model.net, f"down_{i}").convs.conv_0.adn.D.p
                                                  for i in range(1, 5)]
    assert rates == [0.05, 0.1, 0.2, 0.3, 0.5]
    assert all(m.p == 0.0 for n, m in model.named_modules() if isinstance(m, torch.nn.Dropout) and "upcat" in n)
    assert model.net.final_conv.kernel_size == (3, 3)
    deconv = UNet2D(("image",), 4, upsample="deconv")  # SSL4MIS's ``bilinear: False``: ConvTranspose2d(in, in / 2)
    assert _count(deconv) == _count(model) - sum(f * f // 2 + f // 2 for f in (256, 128, 64, 32)) + \
        sum(4 * f * f // 2 + f // 2 for f in (256, 128, 64, 32))
    with pytest.raises(ConfigError, match="twice the previous"):
        UNet2D(("image",), 4, widths=(16, 32, 64, 128, 128))


def _transunet_params(trunk: int, channels, k: int, d=768, depth=12, grid=14, head=512, dec=(256, 128, 64, 16)):
    """TransUNet's counts by hand around a trunk of ``trunk`` parameters (``channels`` at strides 2, 4, 8, 16)."""
    total = trunk + channels[3] * d + d + grid * grid * d  # patch embedding (1x1 conv) and position embedding
    total += depth * (12 * d * d + 13 * d) + 2 * d  # ViT blocks (MLP ratio 4) and the final LayerNorm
    total += 9 * d * head + 2 * head  # conv_more: 3x3 conv without bias + BatchNorm
    widths, skips = (head, *dec), (channels[2], channels[1], channels[0], 0)
    for cin, cout, skip in zip(widths[:-1], widths[1:], skips):
        total += 9 * (cin + skip) * cout + 2 * cout + 9 * cout * cout + 2 * cout
    return total + 9 * dec[-1] * k + k


def test_transunet_paper_config_counts():
    model = TransUNet(("image",), 9)
    cfg = model.config
    assert (cfg.backbone, cfg.hidden_size, cfg.depth, cfg.num_heads, cfg.mlp_ratio, cfg.img_size) == \
        ("resnet50", 768, 12, 12, 4.0, 224)
    trunk = timm.create_model("resnet50", features_only=True, out_indices=(0, 1, 2, 3), in_chans=1)
    assert _count(model.trunk) == _count(trunk) == 8_537_024
    assert _count(model) == _transunet_params(_count(trunk), (64, 256, 512, 1024), 9) == 101_919_257
    # TransUNet's own R50 (3, 4, 9 units; GroupNorm has BatchNorm's parameters) with three channels: 105.28 M
    r50 = timm.create_model("resnet50", features_only=True, out_indices=(0, 1, 2, 3), in_chans=3, layers=(3, 4, 9, 3))
    assert round(_transunet_params(_count(r50), (64, 256, 512, 1024), 9) / 1e6, 2) == 105.28


def _swin_unet_params(cin: int, k: int, c=96, depths=(2, 2, 2, 2), heads=(3, 6, 12, 24), window=7, patch=4):
    """Swin-UNet (``SwinTransformerSys``) counted by hand; every stage's grid is at least the window (224)."""
    def blocks(dim, n, h):  # LayerNorms, qkv, proj, relative position bias table, MLP (ratio 4)
        return n * (12 * dim * dim + 13 * dim + (2 * window - 1) ** 2 * h)

    def expand(dim):  # Linear(D, 2D) without bias + LayerNorm(D / 2)
        return 2 * dim * dim + dim
    dims = [c * 2 ** i for i in range(4)]
    total = cin * patch * patch * c + c + 2 * c  # patch embedding + LayerNorm
    total += sum(blocks(dims[i], depths[i], heads[i]) for i in range(4))
    total += sum(2 * 4 * dims[i] + 4 * dims[i] * 2 * dims[i] for i in range(3))  # patch merging
    total += 2 * dims[3] + expand(dims[3])  # bottleneck LayerNorm, first expanding
    for i in (2, 1, 0):  # decoder: concat Linear(2D, D), blocks, expanding
        total += 2 * dims[i] * dims[i] + dims[i] + blocks(dims[i], depths[i], heads[i]) + (expand(dims[i]) if i else 0)
    total += 2 * c + c * patch * patch * c + 2 * c  # norm_up, final x4 expanding
    return total + c * k  # 1x1 head without bias


def test_swin_unet_paper_config_counts():
    model = SwinUNet(("image",), 4)
    cfg = model.config
    assert (cfg.embed_dim, cfg.depths, cfg.decoder_depths, cfg.num_heads, cfg.window_size, cfg.img_size) == \
        (96, (2, 2, 2, 2), (2, 2, 2), (3, 6, 12, 24), 7, 224)
    assert _count(model) == _swin_unet_params(1, 4) == 27_165_348
    assert round(_swin_unet_params(3, 9) / 1e6, 2) == 27.17  # the paper's count (3 channels, 9 Synapse classes)
    assert _count(UNet2D(("image",), 4)) < _count(model) < _count(TransUNet(("image",), 4))


def test_swin_unet_windows_are_planned_for_img_size_and_other_sizes_run():
    model = SwinUNet(("image",), 2, TINY["swin_unet"]).eval()  # grids 16, 8, 4, 2 at 64 x 64; window 4
    plan = [(blk.window_size, blk.shift_size) for stage in model.stages for blk in stage.blocks]
    # a grid not larger than the window: one window, no shift (the release's rule)
    assert plan == [((4, 4), (0, 0)), ((4, 4), (2, 2))] * 2 + [((4, 4), (0, 0))] * 2 + [((2, 2), (0, 0))] * 2
    with torch.no_grad():
        for size in ((32, 32), (64, 64), (96, 160)):
            out = model(torch.randn(1, 1, *size))
            assert out.shape == (1, 2, *size) and torch.isfinite(out).all()
    with pytest.raises(ConfigError, match="stage 1 width 6 is not divisible by 4 heads"):
        SwinUNet(("image",), 2, TINY["swin_unet"], num_heads=(4, 1, 1, 1), embed_dim=6)


def test_patch_expand_puts_each_tokens_channels_on_its_neighbours():
    expand = PatchExpand(8, scale=2, out_dim=2)
    with torch.no_grad():
        expand.expand.weight.copy_(torch.eye(8))
    expand.norm = torch.nn.Identity()
    x = torch.randn(1, 3, 5, 8)
    y = expand(x)
    assert y.shape == (1, 6, 10, 2)
    for p1 in range(2):
        for p2 in range(2):  # channels grouped (p1 p2 c), as the release's einops pattern
            assert torch.equal(y[0, 2 + p1, 6 + p2], x[0, 1, 3, (2 * p1 + p2) * 2:(2 * p1 + p2) * 2 + 2])


def test_transunet_position_embedding_is_resampled_bicubically_for_other_grids():
    torch.manual_seed(0)
    model = TransUNet(("image",), 2, TINY["transunet"]).eval()  # built for 32 x 32: a 2 x 2 grid
    assert model.pos_embed.shape == (1, 4, 32)
    assert model.position_embedding((2, 2)) is model.pos_embed
    grid = model.pos_embed.detach().reshape(1, 2, 2, 32).permute(0, 3, 1, 2)
    want = F.interpolate(grid, size=(4, 6), mode="bicubic", antialias=True).permute(0, 2, 3, 1).reshape(1, 24, 32)
    torch.testing.assert_close(model.position_embedding((4, 6)), want)
    before = model.pos_embed.detach().clone()
    x = torch.randn(1, 1, 64, 96)
    model(x).sum().backward()  # a 4 x 6 grid: the resampled embedding is used and trained
    assert model.pos_embed.grad is not None and torch.count_nonzero(model.pos_embed.grad) > 0
    assert torch.equal(model.pos_embed.detach(), before)
    with pytest.raises(ConfigError, match="multiple of 16"):
        TransUNet(("image",), 2, TINY["transunet"], img_size=40)


@pytest.mark.parametrize("overrides, message", [
    ({"backbone": "no_such_net"}, "cannot be built by timm"),
    ({"backbone": "convnext_atto", "backbone_kwargs": {}}, "feature strides"),
    ({"backbone_kwargs": {"pretrained": True}}, "may not set"),
    ({"hidden_size": 33}, "not divisible by num_heads"),
    ({"n_skip": 4}, "n_skip"),
])
def test_transunet_config_errors_are_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message) as info:
        TransUNet(("image",), 2, TINY["transunet"], **overrides)
    assert "\n" not in str(info.value)


def test_transunet_loads_local_trunk_weights(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(1)
    # a whole timm ResNet with three input channels: its last stage and classifier are not part of the trunk
    full = timm.create_model("resnet18", pretrained=False, in_chans=3, **SMALL_TRUNK)
    path = tmp_path / "resnet.safetensors"
    save_file({k: v.contiguous() for k, v in full.state_dict().items()}, str(path))
    model = TransUNet(("image",), 2, TINY["transunet"], weights_path=str(path))
    trunk = model.trunk.state_dict()
    assert torch.equal(trunk["layer3.0.conv2.weight"], full.state_dict()["layer3.0.conv2.weight"])
    assert torch.equal(trunk["bn1.running_var"], full.state_dict()["bn1.running_var"])
    torch.testing.assert_close(trunk["conv1.weight"], full.conv1.weight.detach().sum(dim=1, keepdim=True))
    # the model's own state dict (keys under "trunk."), as a torch file
    torch.save(model.state_dict(), tmp_path / "model.pt")
    again = TransUNet(("image",), 2, TINY["transunet"], weights_path=str(tmp_path / "model.pt"))
    assert all(torch.equal(v, again.trunk.state_dict()[k]) for k, v in trunk.items())


def test_transunet_weight_file_errors_name_the_file(tmp_path):
    from safetensors.torch import save_file

    wrong = timm.create_model("resnet18", pretrained=False)  # full-width resnet18: other shapes
    save_file({k: v.contiguous() for k, v in wrong.state_dict().items()}, str(tmp_path / "wide.safetensors"))
    (tmp_path / "junk.safetensors").write_bytes(b"not a weight file")
    save_file({"encoder.weight": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    for name, message in (("missing.safetensors", "not found"), ("wide.safetensors", "does not fit"),
                          ("junk.safetensors", "junk.safetensors"), ("other.safetensors", "missing")):
        with pytest.raises(CheckpointError, match=message) as info:
            TransUNet(("image",), 2, TINY["transunet"], weights_path=str(tmp_path / name))
        assert isinstance(info.value, InputError) and "\n" not in str(info.value)
        assert name in str(info.value)
