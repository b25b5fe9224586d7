"""The combined DMAF-Net objective: terms, switches, per-sequence weights, gaps."""

from __future__ import annotations

import math

import pytest
import torch

from medmodal.losses.dmafnet_loss import DMAFNetLoss, DMAFNetLossConfig
from medmodal.losses.segmentation import SegmentationLoss, deep_supervision_loss, masked_aux_loss, masked_mean

B, M, K, C = 2, 3, 3, 8
MASK = torch.tensor([[True, False, True], [True, False, False]])  # sequence 1 absent from the batch


def _outputs(seed=0, deep_small=True):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g).requires_grad_()  # noqa: E731
    e = torch.randn(B, M, C, 2, 2, 2, generator=g)
    e[~MASK] = 0.0
    return {
        "logits": r(B, K, 8, 8, 8),
        "deep_logits": [r(B, K, 4, 4, 4) if deep_small else r(B, K, 8, 8, 8)],
        "aux_logits": r(B, M, K, 8, 8, 8),
        "modality_features": e.requires_grad_(),
        "fused_features": r(B, C, 2, 2, 2),
        "modality_mask": MASK.clone(),
    }


def _target(seed=0):
    return torch.randint(0, K, (B, 8, 8, 8), generator=torch.Generator().manual_seed(seed))


def _loss(**cfg):
    torch.manual_seed(0)
    return DMAFNetLoss(DMAFNetLossConfig(**cfg), feature_channels=C, num_modalities=M, num_classes=K)


def test_full_loss_terms_gradients_and_gaps():
    out, y = _outputs(), _target()
    crit = _loss()
    total, terms, gaps = crit.compute(out, y)
    assert total.ndim == 0 and torch.isfinite(total)
    assert set(terms) == {"seg", "deep", "aux", "cca", "maa", "rd", "proto", "pd"}
    assert all(not v.requires_grad and torch.isfinite(v) for v in terms.values())
    # total = seg + deep + mean over present pairs of (aux + rd + pd)  (all weights 1 / 0.5 defaults)
    want = terms["seg"] + terms["deep"] + terms["aux"] + terms["rd"] + terms["pd"]
    assert torch.allclose(total.detach(), want, atol=1e-5)
    assert torch.allclose(terms["rd"], 0.5 * terms["cca"] + 0.5 * terms["maa"], atol=1e-6)
    # gaps: [M], detached, NaN exactly for the sequence absent from the whole batch
    assert gaps.shape == (M,) and not gaps.requires_grad
    assert math.isnan(gaps[1]) and torch.isfinite(gaps[[0, 2]]).all() and (gaps[[0, 2]] > 0).all()

    total.backward()
    fg = out["modality_features"].grad.flatten(2).abs().sum(-1)
    assert (fg[MASK] > 0).all() and (fg[~MASK] == 0).all()
    ag = out["aux_logits"].grad.flatten(2).abs().sum(-1)
    assert (ag[MASK] > 0).all() and (ag[~MASK] == 0).all()
    assert crit.cca.weight.grad.abs().sum() > 0
    assert crit.maa.attention.in_proj_weight.grad.abs().sum() > 0
    # the teacher f_L is reached only through ... nothing: distillation detaches it
    assert out["fused_features"].grad is None
    assert out["deep_logits"][0].grad.abs().sum() > 0


def test_gaps_are_per_sequence_means_of_distillation_over_present_samples():
    out, y = _outputs(), _target()
    crit = _loss()
    _, _, gaps = crit.compute(out, y)
    e, f = out["modality_features"], out["fused_features"]
    pair = 0.5 * crit.cca(e, f, MASK) + 0.5 * crit.maa(e, f, MASK) + 0.5 * crit.proto(e, f, y, MASK, num_classes=K)
    assert torch.allclose(gaps[0], pair[:, 0].mean(), atol=1e-6)   # present in both samples
    assert torch.allclose(gaps[2], pair[0, 2], atol=1e-6)           # present in sample 0 only


def test_gap_sources():
    out, y = _outputs(), _target()
    _, _, distill = _loss().compute(out, y)
    _, _, aux_gap = _loss(gap_source="aux").compute(out, y)
    _, _, both = _loss(gap_source="distill+aux", aux_weight=2.0).compute(out, y)
    aux = masked_aux_loss(out["aux_logits"], y, MASK, SegmentationLoss()).detach()
    assert torch.allclose(aux_gap[0], aux[:, 0].mean(), atol=1e-6)
    assert torch.allclose(both[[0, 2]], distill[[0, 2]] + 2.0 * aux_gap[[0, 2]], atol=1e-5)
    assert math.isnan(both[1])


def test_switching_rd_and_pd_off_drops_terms_and_parameters():
    out, y = _outputs(), _target()
    full_total, full_terms, _ = _loss().compute(out, y)
    no_rd = _loss(use_rd=False)
    assert no_rd.cca is None and no_rd.maa is None and len(list(no_rd.parameters())) == 0
    total, terms, _ = no_rd(out, y)
    assert "cca" not in terms and "maa" not in terms and "rd" not in terms and "pd" in terms
    assert torch.allclose(total, full_total - full_terms["rd"], atol=1e-5)

    none = _loss(use_rd=False, use_pd=False)
    total, terms, gaps = none(out, y)
    assert set(terms) == {"seg", "deep", "aux"}
    seg = SegmentationLoss()
    want = (seg(out["logits"], y) + deep_supervision_loss(seg, out["deep_logits"], y)
            + masked_aux_loss(out["aux_logits"], y, MASK, seg, reduction="mean"))
    assert torch.allclose(total, want, atol=1e-5)
    # without RD/PD the DTM gap falls back to the per-sequence auxiliary loss
    aux = masked_aux_loss(out["aux_logits"], y, MASK, seg)
    assert torch.allclose(gaps[0], aux[:, 0].mean().detach(), atol=1e-6) and math.isnan(gaps[1])
    total.backward()
    assert out["modality_features"].grad is None  # distillation inputs untouched

    no_pd = _loss(use_pd=False)
    _, terms, _ = no_pd(out, y)
    assert "proto" not in terms and "rd" in terms


def test_sequence_weights_scale_each_sequence():
    out, y = _outputs(), _target()
    crit = _loss()
    base, _, gaps = crit.compute(out, y)
    ones, _, gaps1 = crit.compute(out, y, sequence_weights=torch.ones(M))
    assert torch.allclose(base, ones) and torch.allclose(gaps, gaps1, equal_nan=True)

    w = torch.tensor([1.0, 1.0, 0.0])
    wt, _, gaps_w = crit.compute(out, y, sequence_weights=w)
    assert torch.allclose(gaps_w, gaps, equal_nan=True)  # gaps are unweighted
    out2 = dict(out)
    aux = out["aux_logits"].detach().clone()
    aux[0, 2] = torch.randn(K, 8, 8, 8)
    out2["aux_logits"] = aux
    assert torch.allclose(crit.compute(out2, y, sequence_weights=w)[0], wt, atol=1e-6)
    assert not torch.allclose(crit.compute(out2, y)[0], base, atol=1e-6)

    # doubling a present sequence's weight adds exactly its (pair-mean-normalised) contribution once more
    s = _loss(use_rd=False, use_pd=False)
    t1, terms, _ = s(out, y)
    t2, _, _ = s(out, y, sequence_weights=torch.tensor([1.0, 1.0, 2.0]))
    aux_pairs = masked_aux_loss(out["aux_logits"], y, MASK, s.seg)
    assert torch.allclose(t2 - t1, aux_pairs[0, 2] / MASK.sum(), atol=1e-5)
    with pytest.raises(ValueError):
        crit.compute(out, y, sequence_weights=torch.ones(M + 1))


def test_full_resolution_deep_logits_and_channel_target():
    out, y = _outputs(deep_small=False), _target()
    total, terms, _ = _loss().compute(out, y[:, None])
    assert torch.isfinite(total) and "deep" in terms


def test_config_validation_and_rd_needs_channels():
    with pytest.raises(ValueError):
        DMAFNetLossConfig(gap_source="bogus")
    with pytest.raises(ValueError):
        DMAFNetLossConfig(cca_weight=-1)
    with pytest.raises(ValueError):
        DMAFNetLoss(DMAFNetLossConfig(), num_modalities=M)
    assert DMAFNetLossConfig(deep_supervision_weights=[1, 0.5]).deep_supervision_weights == (1.0, 0.5)
    DMAFNetLoss(DMAFNetLossConfig(use_rd=False), num_modalities=M)


def test_with_the_dmafnet_model():
    from medmodal.models import create_model

    torch.manual_seed(0)
    model = create_model("dmafnet", modalities=("a", "b", "c"), num_classes=K,
                         widths=(8, 16), token_grid=2, num_heads=2, depth=1, deep_supervision=False)
    crit = DMAFNetLoss(DMAFNetLossConfig(maa_heads=2), feature_channels=model.feature_channels,
                       num_modalities=M, num_classes=K)
    x = torch.randn(B, M, 8, 8, 8)
    out = model.forward_train(x, MASK)
    total, terms, gaps = crit.compute(out, _target())
    total.backward()
    assert torch.isfinite(total) and math.isnan(gaps[1])
    g = [sum(p.grad.abs().sum() for p in enc.parameters() if p.grad is not None) for enc in model.encoders]
    assert g[0] > 0 and g[2] > 0 and g[1] == 0


def test_objective_contract_dict_and_old_tuple_call():
    """forward(outputs, StepContext) -> {"loss", terms, "gaps"}, equal to compute(); the old call
    loss(outputs, target, sequence_weights=...) still returns the tuple (one release)."""
    from medmodal.losses import StepContext, build_objective, get_objective_class

    assert get_objective_class("dmafnet") is DMAFNetLoss
    out, y, w = _outputs(), _target(), torch.tensor([1.5, 1.0, 0.5])
    crit = _loss()
    total, terms, gaps = crit.compute(out, y, sequence_weights=w)
    got = crit(out, StepContext(target=y, sequence_weights=w))
    assert set(got) == {"loss", "gaps", *terms} and torch.equal(got["loss"], total)
    assert all(torch.equal(got[k], v) for k, v in terms.items())
    torch.testing.assert_close(got["gaps"], gaps, rtol=0, atol=0, equal_nan=True)
    old = crit(out, y, sequence_weights=w)
    assert torch.equal(old[0], total)
    torch.manual_seed(0)
    built = build_objective("dmafnet", config=DMAFNetLossConfig(), feature_channels=C, num_modalities=M, num_classes=K)
    assert torch.equal(built.compute(out, y)[0], crit.compute(out, y)[0])
