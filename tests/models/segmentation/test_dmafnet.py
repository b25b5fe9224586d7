"""DMAF-Net specifics: forward_train outputs, encode/decode split, attention maps, variants."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medmodal.data.missing import all_subsets
from medmodal.models import DMAFNet, DMAFNetConfig, create_model
from medmodal.layers.masking import present_mean
from medmodal.models.segmentation.blocks import (
    MaskedMeanFusion,
    MaskedMultiheadAttention,
    MaskedTransformer,
)
from medmodal.models.segmentation.dmafnet import DMAFFusion

MODALITIES = ("flair", "t1", "t1ce", "t2")
K = 4
SIZE = (16, 16, 16)
TINY = dict(widths=(4, 8, 16), token_grid=2, num_heads=2, depth=2)
SUBSETS = torch.tensor(all_subsets(4))
MIXED = torch.tensor([[True, False, False, False], [False, True, True, False], [True, True, True, True]])


def tiny(seed: int = 0, **overrides) -> DMAFNet:
    torch.manual_seed(seed)
    return create_model("dmafnet", modalities=MODALITIES, num_classes=K, **{**TINY, **overrides})


def images(batch: int, size=SIZE, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, len(MODALITIES), *size, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------- outputs
def test_forward_train_keys_and_shapes():
    model = tiny().train()
    out = model.forward_train(images(3), MIXED)
    assert set(out) == {"logits", "deep_logits", "aux_logits", "modality_features", "fused_features",
                        "attention_maps", "modality_mask"}
    assert out["logits"].shape == (3, K, *SIZE)
    # widths (4, 8, 16): 3 levels -> one coarser deep-supervision scale (clipped from 2), up-sampled
    assert [d.shape for d in out["deep_logits"]] == [(3, K, *SIZE)]
    assert out["aux_logits"].shape == (3, 4, K, *SIZE)
    assert out["modality_features"].shape == (3, 4, 16, 4, 4, 4)
    assert out["fused_features"].shape == (3, 16, 4, 4, 4)
    assert [a.shape for a in out["attention_maps"]] == [(3, 4, 16, 16, 16), (3, 4, 8, 8, 8), (3, 4, 4, 4, 4)]
    assert out["modality_mask"].dtype == torch.bool and torch.equal(out["modality_mask"], MIXED)
    absent = ~MIXED
    assert (out["aux_logits"][absent] == 0).all() and (out["modality_features"][absent] == 0).all()
    assert out["aux_logits"][MIXED].abs().sum(dim=tuple(range(1, 5))).gt(0).all()
    for value in (out["logits"], out["aux_logits"], out["fused_features"], *out["deep_logits"]):
        assert torch.isfinite(value).all()


def test_deep_supervision_off_and_default_scales():
    assert tiny(deep_supervision=False).forward_train(images(1), MIXED[:1])["deep_logits"] == []
    model = tiny(widths=(4, 8, 16, 32))
    out = model.forward_train(images(1), MIXED[2:])
    assert [d.shape for d in out["deep_logits"]] == [(1, K, *SIZE)] * 2


def test_forward_train_logits_equal_forward():
    model = tiny().eval()
    x = images(3)
    with torch.no_grad():
        assert torch.equal(model.forward_train(x, MIXED)["logits"], model(x, MIXED))


def test_attention_maps_normalised_over_present_sequences():
    model = tiny().eval()
    with torch.no_grad():
        maps = model.forward_train(images(len(SUBSETS)), SUBSETS)["attention_maps"]
    for level_maps in maps:
        view = SUBSETS.reshape(len(SUBSETS), 4, 1, 1, 1).expand_as(level_maps)
        assert (level_maps[~view] == 0).all(), "absent sequences must get weight exactly 0"
        assert (level_maps[view] > 0).all()
        torch.testing.assert_close(level_maps.sum(dim=1), torch.ones_like(level_maps[:, 0]))
    single = SUBSETS.sum(1) == 1
    assert (maps[0][single].sum(1) == 1).all()  # one present sequence: weight exactly 1


def test_dmaf_maps_are_not_uniform():
    model = tiny().eval()
    with torch.no_grad():
        maps = model.forward_train(images(1), MIXED[2:])["attention_maps"][0]
    assert maps.std() > 0


# ------------------------------------------------------------------------- encode/decode
def test_encode_decode_equals_forward():
    model = tiny().eval()
    x = images(len(SUBSETS))
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(3)) * 1000
    x_noisy = torch.where(SUBSETS[:, :, None, None, None], x, noise)
    with torch.no_grad():
        ref = model(x, SUBSETS)
        feats = model.encode(x * SUBSETS[:, :, None, None, None])
        assert [f.shape for f in feats] == [(15, 4, 4, 16, 16, 16), (15, 4, 8, 8, 8, 8), (15, 4, 16, 4, 4, 4)]
        assert torch.equal(model.decode(feats, SUBSETS), ref)
        # features of absent sequences are masked in decode: encoding the noisy input changes nothing
        assert torch.equal(model.decode(model.encode(x_noisy), SUBSETS), ref)


def test_decode_all_subsets_from_one_encoding():
    model = tiny().eval()
    x = images(1)
    with torch.no_grad():
        batched = model.decode(model.encode(x), SUBSETS)  # features B=1, 15 masks
        assert batched.shape == (15, K, *SIZE)
        for i, subset in enumerate(SUBSETS):
            torch.testing.assert_close(batched[i:i + 1], model(x, subset[None]), rtol=1e-4, atol=1e-5)
        with pytest.raises(ValueError, match="batch"):
            model.decode(model.encode(images(2)), SUBSETS[:3])


# ------------------------------------------------------------------------------ gradients
def test_forward_train_gradients_with_auxiliary_losses():
    model = tiny().train()
    mask = torch.tensor([[True, False, True, False]])
    out = model.forward_train(images(1), mask)
    y = torch.randint(0, K, (1, *SIZE), generator=torch.Generator().manual_seed(0))
    loss = F.cross_entropy(out["logits"], y) + sum(F.cross_entropy(d, y) for d in out["deep_logits"])
    loss = loss + sum(F.cross_entropy(out["aux_logits"][:, i], y) for i in range(4) if mask[0, i])
    loss = loss + out["modality_features"].square().mean() + out["fused_features"].square().mean()
    loss.backward()
    for i in range(4):
        total = sum(float(p.grad.abs().sum()) for p in model.encoders[i].parameters() if p.grad is not None)
        assert (total > 0) == bool(mask[0, i]), f"encoder {i}: grad {total}"
    for module in (model.shared_decoder, model.fusion_decoder, model.fusions[0].transformer):
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in module.parameters())
    emb = model.fusions[0].tokenizer.modality_embed.grad[0, :, 0]  # [M, C]
    assert (emb[~mask[0]] == 0).all() and (emb[mask[0]].abs().sum(1) > 0).all()


# ------------------------------------------------------------------------------- variants
def test_mean_fusion_variant():
    model = tiny(fusion="mean").eval()
    assert not any(isinstance(f, DMAFFusion) for f in model.fusions)
    assert model.num_parameters() < tiny().num_parameters()
    with torch.no_grad():
        out = model.forward_train(images(len(SUBSETS)), SUBSETS)
    assert out["logits"].shape == (15, K, *SIZE) and torch.isfinite(out["logits"]).all()
    counts = SUBSETS.sum(1, keepdim=True).float()
    for maps in out["attention_maps"]:
        torch.testing.assert_close(maps[..., 0, 0, 0], SUBSETS.float() / counts)


def test_fusion_levels_and_per_level_token_grid():
    model = tiny(fusion_levels=[2], token_grid=[2, 2, 3])
    assert [type(f).__name__ for f in model.fusions] == ["MaskedMeanFusion", "MaskedMeanFusion", "DMAFFusion"]
    assert model.fusions[2].tokenizer.num_tokens == 27
    assert model(images(3), MIXED).shape == (3, K, *SIZE)


def test_2d_variant():
    model = tiny(spatial_dims=2)
    x = torch.randn(2, 4, 32, 32)
    out = model.forward_train(x, MIXED[1:])
    assert out["logits"].shape == (2, K, 32, 32)
    assert out["aux_logits"].shape == (2, 4, K, 32, 32)
    assert out["attention_maps"][1].shape == (2, 4, 16, 16)


def test_config_validation():
    with pytest.raises(TypeError, match="unknown DMAFNetConfig option"):
        tiny(widthz=(4, 8))
    with pytest.raises(ValueError, match="fusion"):
        tiny(fusion="sum")
    with pytest.raises(ValueError, match="num_heads"):
        tiny(num_heads=3)
    with pytest.raises(ValueError, match="fusion_levels"):
        tiny(fusion_levels=[5])
    with pytest.raises(ValueError, match="token_grid"):
        tiny(token_grid=[2, 2])
    cfg = DMAFNetConfig(widths=[8, 16], token_grid=[2, 2])
    assert cfg.widths == (8, 16) and cfg.token_grid == (2, 2)
    model = DMAFNet(MODALITIES, K, config=cfg, num_heads=2)
    assert model.config.num_heads == 2 and model.feature_channels == 16


def test_input_validation():
    model = tiny()
    with pytest.raises(ValueError, match="divisible"):
        model(torch.randn(1, 4, 18, 16, 16), MIXED[:1])
    with pytest.raises(ValueError, match="images must be"):
        model(torch.randn(1, 3, 16, 16, 16), MIXED[:1])
    with pytest.raises(ValueError, match="modality_mask"):
        model(images(1), torch.ones(1, 3, dtype=torch.bool))
    assert model(images(1), torch.tensor([[1, 0, 0, 1]])).shape == (1, K, *SIZE)  # 0/1 ints accepted


def test_default_config_parameter_count():
    model = create_model("dmafnet", modalities=MODALITIES, num_classes=4)
    assert model.config.widths == (16, 32, 64, 128) and len(model.encoders) == 4
    assert model.config.depth == 4 and len(model.fusions[0].transformer.layers) == 4
    print(f"\nDMAF-Net default config, 4 sequences / 4 classes: {model.num_parameters():,} parameters")


# --------------------------------------------------------------------------------- blocks
def test_masked_attention_ignores_masked_keys():
    torch.manual_seed(0)
    attn = MaskedMultiheadAttention(8, 2).eval()
    x = torch.randn(2, 6, 8)
    key_mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 0, 1, 0, 1, 0]], dtype=torch.bool)
    y = x.clone()
    y[~key_mask] = torch.randn(int((~key_mask).sum()), 8) * 100
    torch.testing.assert_close(attn(x[:, :1], x, key_mask), attn(x[:, :1], y, key_mask))
    tr = MaskedTransformer(8, 2, 2).eval()
    out = tr(x, key_mask)
    assert (out[~key_mask] == 0).all()
    torch.testing.assert_close(out[key_mask], tr(y, key_mask)[key_mask])


def test_mean_fusion():
    feats = torch.randn(2, 3, 5, 4)
    mask = torch.tensor([[True, False, True], [False, False, True]])
    fused, w = MaskedMeanFusion()(feats, mask)
    torch.testing.assert_close(fused, present_mean(feats, mask))
    assert w.shape == (2, 3, 4)
