"""PASSION terms: self-distillation (fused -> per-sequence) and preference-aware weights."""

import pytest
import torch

from medmodal.losses import DMAFNetLoss, DMAFNetLossConfig, preference_weights, self_distillation_loss

MASK = torch.tensor([[True, False, True], [False, True, True]])


def logits(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_self_distillation_zero_when_student_equals_teacher_and_positive_otherwise():
    fused = logits(2, 4, 6, 6)
    same = fused[:, None].expand(2, 3, 4, 6, 6).clone()
    assert self_distillation_loss(same, fused, MASK).abs().max() < 1e-6
    other = self_distillation_loss(logits(2, 3, 4, 6, 6, seed=1), fused, MASK, temperature=2.0)
    assert (other[MASK] > 0).all() and (other[~MASK] == 0).all()


def test_self_distillation_gradient_reaches_present_students_only():
    fused = logits(2, 4, 6, 6).requires_grad_(True)
    aux = logits(2, 3, 4, 6, 6, seed=1).requires_grad_(True)
    self_distillation_loss(aux, fused, MASK).sum().backward()
    assert fused.grad is None  # the teacher is detached
    per_pair = aux.grad.abs().flatten(2).sum(2)
    assert (per_pair[MASK] > 0).all() and (per_pair[~MASK] == 0).all()
    with pytest.raises(ValueError, match="temperature"):
        self_distillation_loss(aux, fused, MASK, temperature=0)


def test_preference_weights_favour_the_worse_sequence():
    pair = torch.tensor([[1.0, 0.0, 3.0], [0.0, 2.0, 3.0]])
    w = preference_weights(pair, MASK)
    # per-sequence means 1, 2, 3 over present pairs; overall mean (1+3+2+3)/4 = 2.25
    torch.testing.assert_close(w, torch.tensor([1.0, 2.0, 3.0]) / 2.25)
    assert w[2] > 1 > w[0]
    absent = preference_weights(pair, torch.tensor([[True, False, False], [True, False, False]]))
    assert absent[1] == absent[2] == 1


def test_dmafnet_loss_passion_options_change_the_objective():
    b, m, k = 2, 3, 4
    out = {"logits": logits(b, k, 8, 8), "deep_logits": [], "aux_logits": logits(b, m, k, 8, 8, seed=2),
           "modality_features": None, "fused_features": None, "modality_mask": MASK}
    target = torch.randint(0, k, (b, 8, 8), generator=torch.Generator().manual_seed(3))
    base = DMAFNetLossConfig(use_rd=False, use_pd=False)
    plain, _, _ = DMAFNetLoss(base, num_modalities=m).compute(out, target)
    passion = DMAFNetLossConfig(use_rd=False, use_pd=False, self_distill_weight=1.0, preference_weighting=True)
    total, terms, _ = DMAFNetLoss(passion, num_modalities=m).compute(out, target)
    assert torch.isfinite(total) and terms["self_distill"] > 0 and not torch.isclose(total, plain)
    no_aux, terms, _ = DMAFNetLoss(passion, num_modalities=m).compute({**out, "aux_logits": None}, target)
    assert "aux" not in terms and torch.isfinite(no_aux)  # single-encoder models: seg terms only


def test_passion_preset_matches_the_benchmark_method():
    from medmodal.config import load_config, packaged_config
    from medmodal.experiments.seg.benchmark import METHODS

    cfg = load_config(packaged_config("passion_brats2020"))
    loss = DMAFNetLossConfig(**cfg.loss)
    assert cfg.model.name == "passion" and not loss.use_rd and not loss.use_pd
    assert loss.self_distill_weight > 0 and loss.preference_weighting
    assert loss == DMAFNetLossConfig(**METHODS["passion"].loss)  # the benchmark trains what the preset describes
