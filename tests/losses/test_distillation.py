"""Relation distillation (CCA, MAA) and prototype distillation."""

from __future__ import annotations

import pytest
import torch

from medmodal.losses.distillation import (
    CovarianceConsistencyLoss,
    MaskedAttentionAlignmentLoss,
    PrototypeDistillationLoss,
    class_weights_at,
    reduce_pair_loss,
)

B, M, C = 2, 3, 8
S = (2, 2, 2)
MASK = torch.tensor([[True, False, True], [False, True, True]])


def _feats(seed=0):
    g = torch.Generator().manual_seed(seed)
    e = torch.randn(B, M, C, *S, generator=g)
    e[~MASK] = 0.0  # missing sequences are zeroed by the model
    f = torch.randn(B, C, *S, generator=g)
    return e.requires_grad_(), f.requires_grad_()


def _student_equals_teacher(f):
    e = f.detach()[:, None].repeat(1, M, *([1] * (f.dim() - 1))).clone()
    e[~MASK] = 0.0
    return e.requires_grad_()


def _check_grads(e, f, loss, teacher_detached=True):
    reduce_pair_loss(loss, MASK).backward()
    g = e.grad.flatten(2).abs().sum(-1)
    assert (g[MASK] > 0).all(), "student features of present pairs must get gradient"
    assert (g[~MASK] == 0).all(), "missing pairs must get no gradient"
    if teacher_detached:
        assert f.grad is None or (f.grad == 0).all()


# ----------------------------------------------------------------------------- CCA
def test_cca_zero_for_identical_student_and_teacher():
    _, f = _feats()
    loss = CovarianceConsistencyLoss(C)(_student_equals_teacher(f), f, MASK)
    assert loss.shape == (B, M)
    assert loss.abs().max().item() < 1e-5


def test_cca_positive_scale_invariant_and_zero_for_missing():
    e, f = _feats()
    cca = CovarianceConsistencyLoss(C)
    loss = cca(e, f, MASK)
    assert torch.isfinite(loss).all()
    assert (loss[MASK] > 0.01).all() and (loss[~MASK] == 0).all()
    assert (loss[MASK] <= 1.0 + 1e-6).all()
    # normalised Frobenius: invariant to the teacher's scale; "mse" is not
    assert torch.allclose(cca(e, 3 * f, MASK), loss, atol=1e-5)
    # covariances are centred over positions: a per-channel offset changes nothing
    offset = torch.randn(1, 1, C, 1, 1, 1) * 5
    assert torch.allclose(cca(e + offset, f - offset[:, 0], MASK), loss, atol=1e-5)
    mse = CovarianceConsistencyLoss(C, mode="mse")
    assert not torch.allclose(mse(e, 3 * f, MASK), mse(e, f, MASK))


def test_cca_gradients_reach_student_and_projection_not_teacher():
    e, f = _feats()
    cca = CovarianceConsistencyLoss(C, init="random")
    _check_grads(e, f, cca(e, f, MASK))
    assert cca.weight.grad is not None and cca.weight.grad.abs().sum() > 0


def test_cca_teacher_gets_gradient_when_not_detached():
    e, f = _feats()
    loss = CovarianceConsistencyLoss(C, detach_teacher=False)(e, f, MASK)
    reduce_pair_loss(loss, MASK).backward()
    assert f.grad is not None and f.grad.abs().sum() > 0


def test_cca_per_modality_projections():
    e, f = _feats()
    cca = CovarianceConsistencyLoss(C, num_modalities=M, per_modality=True, init="random")
    assert cca.weight.shape == (M, C, C)
    loss = cca(e, f, MASK)
    reduce_pair_loss(loss, MASK).backward()
    g = cca.weight.grad.flatten(1).abs().sum(1)
    assert (g > 0).all()  # each sequence present in some sample here


def test_cca_2d_and_no_present_pairs():
    e = torch.randn(1, 2, 4, 3, 3)
    f = torch.randn(1, 4, 3, 3)
    out = CovarianceConsistencyLoss(4)(e, f, torch.tensor([[True, True]]))
    assert out.shape == (1, 2) and (out > 0).all()
    none = CovarianceConsistencyLoss(4)(e, f, torch.tensor([[False, False]]))
    assert (none == 0).all()


# ----------------------------------------------------------------------------- MAA
def _selective_maa(scale=10.0):
    """Q = K projections scale*I, V = out = I: attention picks the key equal to the query."""
    maa = MaskedAttentionAlignmentLoss(C, num_heads=1)
    att = maa.attention
    with torch.no_grad():
        eye = torch.eye(C)
        att.in_proj_weight.copy_(torch.cat([scale * eye, scale * eye, eye]))
        att.in_proj_bias.zero_()
        att.out_proj.weight.copy_(eye)
        att.out_proj.bias.zero_()
    return maa


def _onehot_teacher():
    n = S[0] * S[1] * S[2]
    tokens = torch.eye(C)[:n]  # N distinct one-hot tokens (N = 8 = C)
    return tokens.T.reshape(1, C, *S).repeat(B, 1, 1, 1, 1)


def test_maa_zero_when_attention_retrieves_the_matching_teacher_token():
    f = _onehot_teacher()
    e = _student_equals_teacher(f)
    maa = _selective_maa()
    loss = maa(e, f, MASK)
    assert loss[MASK].max().item() < 1e-4 and (loss[~MASK] == 0).all()
    # student tokens permuted over positions: each query retrieves the wrong teacher token
    perm = torch.roll(torch.arange(8), 1)
    e_perm = e.detach().flatten(3)[..., perm].reshape(e.shape)
    assert (maa(e_perm, f, MASK)[MASK] > 0.9).all()


def test_maa_not_zero_for_identical_features_with_generic_attention():
    # what the design implies: a learned mixture of value projections != f in general
    _, f = _feats()
    torch.manual_seed(0)
    loss = MaskedAttentionAlignmentLoss(C, num_heads=2)(_student_equals_teacher(f), f, MASK)
    assert torch.isfinite(loss).all() and (loss[MASK] > 0.05).all()


def test_maa_gradients_reach_student_and_attention_not_teacher():
    e, f = _feats()
    torch.manual_seed(0)
    maa = MaskedAttentionAlignmentLoss(C, num_heads=2)
    loss = maa(e, f, MASK)
    assert (loss[MASK] > 0).all() and (loss[~MASK] == 0).all()
    _check_grads(e, f, loss)
    assert maa.attention.in_proj_weight.grad.abs().sum() > 0
    assert maa.attention.out_proj.weight.grad.abs().sum() > 0


def test_maa_key_padding_mask_and_token_grid():
    e, f = _feats()
    torch.manual_seed(0)
    maa = MaskedAttentionAlignmentLoss(C, num_heads=2, mode="mse")
    base = maa(e, f, MASK)
    kpm = torch.zeros(B, 8, dtype=torch.bool)
    kpm[:, :4] = True
    masked = maa(e, f, MASK, key_padding_mask=kpm)
    assert torch.isfinite(masked).all() and not torch.allclose(masked[MASK], base[MASK])
    everything = maa(e, f, MASK, key_padding_mask=torch.ones(B, 8, dtype=torch.bool))
    assert torch.allclose(everything, base)  # fully masked rows are treated as unmasked (no NaN)
    pooled = MaskedAttentionAlignmentLoss(C, num_heads=2, token_grid=1)(e, f, MASK)
    assert torch.isfinite(pooled).all() and (pooled[~MASK] == 0).all()
    with pytest.raises(ValueError):
        maa(e, f, MASK, key_padding_mask=torch.zeros(B, 5, dtype=torch.bool))


# ------------------------------------------------------------------------ prototypes
def _labels(size=(4, 4, 4)):
    y = torch.zeros(B, *size, dtype=torch.long)
    y[:, :2, :2, :2] = 1          # class 1 fills one feature cell in both samples
    y[0, 3, 3, 3] = 2             # class 2: one voxel, sample 0 only; class 3 absent everywhere
    return y


def test_class_weights_area_vs_nearest():
    y = _labels()
    area = class_weights_at(y, S, 4, "area")
    assert area.shape == (B, 4, *S)
    assert torch.allclose(area.sum(1), torch.ones(B, *S))
    assert area[0, 2].sum().item() == pytest.approx(1 / 8)  # a single voxel still counts
    assert area[1, 2].sum().item() == 0.0
    nearest = class_weights_at(y, S, 4, "nearest")
    assert nearest[0, 2].sum().item() == 0.0  # nearest drops it
    assert nearest[0, 1, 0, 0, 0].item() == 1.0


def test_prototype_zero_for_identical_and_hand_computed_value():
    _, f = _feats()
    y = _labels()
    proto = PrototypeDistillationLoss(4)
    loss = proto(_student_equals_teacher(f), f, y, MASK)
    assert loss.abs().max().item() < 1e-5
    # hand computation (cosine, area weights) for pair (0, 0)
    e, f = _feats(1)
    got = proto(e, f, y, MASK)[0, 0]
    w = class_weights_at(y, S, 4).flatten(2)[0]            # [K, N]
    es, ft = e[0, 0].flatten(1), f[0].flatten(1)           # [C, N]
    vals = []
    for c in range(4):
        if w[c].sum() > 0:
            ps = (es * w[c]).sum(1) / w[c].sum()
            pt = (ft * w[c]).sum(1) / w[c].sum()
            vals.append(1 - torch.nn.functional.cosine_similarity(ps, pt, dim=0))
    assert len(vals) == 3
    assert torch.allclose(got, torch.stack(vals).mean(), atol=1e-5)


def test_prototype_absent_classes_excluded_and_no_nan():
    e, f = _feats()
    y = _labels()
    four = PrototypeDistillationLoss(4)(e, f, y, MASK)
    # class 3 is absent: adding it to K changes nothing (not averaged in as 0 or NaN)
    three = PrototypeDistillationLoss(3)(e, f, y, MASK)
    assert torch.allclose(four, three, atol=1e-6)
    assert torch.isfinite(four).all() and (four[MASK] > 0).all() and (four[~MASK] == 0).all()
    # samples that contain only background, without the background prototype: 0, finite grads
    zero = torch.zeros_like(y)
    fg_only = PrototypeDistillationLoss(4, include_background=False)(e, f, zero, MASK)
    assert (fg_only == 0).all()
    _check_grads(e, f, PrototypeDistillationLoss(4, mode="mse")(e, f, y, MASK))
    assert torch.isfinite(e.grad).all()


def test_prototype_teacher_detached_and_num_classes_required():
    e, f = _feats()
    y = _labels()
    loss = PrototypeDistillationLoss(detach_teacher=False)(e, f, y, MASK, num_classes=4)
    reduce_pair_loss(loss, MASK).backward()
    assert f.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        PrototypeDistillationLoss()(e, f, y, MASK)
