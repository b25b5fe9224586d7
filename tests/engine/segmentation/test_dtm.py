"""Dynamic Training Monitoring: gap EMA, PASSION-style loss weights, OGM-GE-style gradient scales."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from medmodal.engine.segmentation.dtm import DTMConfig, DynamicTrainingMonitor

NAN = float("nan")


def _epoch(dtm, gaps, steps=3):
    for _ in range(steps):
        dtm.update(torch.tensor(gaps))
    dtm.step_epoch()


def test_update_ema_and_nan_ignored():
    dtm = DynamicTrainingMonitor(3, DTMConfig(ema_momentum=0.5))
    dtm.update(torch.tensor([1.0, NAN, 4.0]))
    dtm.update(torch.tensor([3.0, NAN, float("inf")]))
    assert dtm.gap_ema[0].item() == pytest.approx(2.0)     # 0.5 * 1 + 0.5 * 3
    assert math.isnan(dtm.gap_ema[1])
    assert dtm.gap_ema[2].item() == pytest.approx(4.0)
    assert dtm.counts.tolist() == [2, 0, 1]
    with pytest.raises(ValueError):
        dtm.update(torch.ones(4))


def test_larger_gap_gets_larger_weight_and_faster_sequence_smaller_gradient_scale():
    dtm = DynamicTrainingMonitor(4)
    assert torch.equal(dtm.loss_weights, torch.ones(4)) and torch.equal(dtm.grad_scales, torch.ones(4))
    _epoch(dtm, [0.5, 1.5, 1.5, 2.5])                                  # mean 1.5
    w, k = dtm.loss_weights, dtm.grad_scales
    assert w[3] > w[1] > w[0] and w[1] == pytest.approx(w[2].item())
    assert w.norm().item() == pytest.approx(2.0, abs=1e-5)            # sqrt(M)
    assert k[0] < 1.0
    assert k[1] == 1.0 and k[2] == 1.0 and k[3] == 1.0                 # at/behind the average: unscaled
    # exact formulas: k_0 = 1 - tanh(alpha (mean/D_0 - 1)); beta = normalise(1 - eta (1 - D/mean))
    assert k[0].item() == pytest.approx(1 - math.tanh(0.5 * (1.5 / 0.5 - 1)), abs=1e-6)
    beta = 1 - 0.01 * (1 - torch.tensor([0.5, 1.5, 1.5, 2.5]) / 1.5)
    assert torch.allclose(w, beta / beta.norm() * 2.0, atol=1e-6)


def test_slower_falling_gap_gets_larger_weight():
    def run(rate_weight):
        dtm = DynamicTrainingMonitor(2, DTMConfig(ema_momentum=0.0, rate_weight=rate_weight))
        _epoch(dtm, [1.0, 2.0])                  # epoch 0: sequence 1 behind
        ratio0 = (dtm.loss_weights[0] / dtm.loss_weights[1]).item()
        _epoch(dtm, [1.0, 1.0])                  # epoch 1: same level; seq 1 halved its gap, seq 0 flat
        return dtm, ratio0, (dtm.loss_weights[0] / dtm.loss_weights[1]).item()

    dtm, before, after = run(1.0)
    assert dtm.gap_rate.tolist() == pytest.approx([0.0, 0.5])
    assert after > before                        # the slower-falling sequence 0 gained weight
    assert dtm.grad_scales[0] == 1.0 and dtm.grad_scales[1] < 1.0
    # rate_weight = 0 (PASSION): equal levels -> no change and no gradient scaling in that epoch
    p, before, after = run(0.0)
    assert after == pytest.approx(before) and torch.equal(p.grad_scales, torch.ones(2))


def test_clamps_norm_and_eta_schedule():
    cfg = DTMConfig(eta=5.0, eta_growth=2.0, eta_growth_every=2, beta_min=0.1, beta_max=4.0)
    dtm = DynamicTrainingMonitor(4, cfg)
    assert dtm.eta == 5.0
    for _ in range(6):
        _epoch(dtm, [0.01, 0.02, 1.0, 50.0])
        w = dtm.loss_weights
        assert (w >= 0.1 - 1e-6).all() and (w <= 4.0 + 1e-6).all()
    assert w[0] == pytest.approx(0.1, abs=1e-6) and w[3] > 1.5
    assert dtm.eta == 5.0 * 2.0 ** 3                   # after 6 epochs: floor(6 / 2) = 3 growth steps
    assert DynamicTrainingMonitor(4).eta == pytest.approx(0.01)
    # bounds win over the norm when both cannot hold (all >= 1.5 means ||beta|| >= 3 > 2)
    tight = DynamicTrainingMonitor(4, DTMConfig(beta_min=1.5, beta_max=4.0))
    _epoch(tight, [0.5, 1.0, 1.0, 2.0])
    assert (tight.loss_weights >= 1.5 - 1e-6).all()
    # gradient floor
    k = DynamicTrainingMonitor(2, DTMConfig(grad_alpha=100.0, grad_min_scale=0.3))
    _epoch(k, [0.01, 10.0])
    assert k.grad_scales[0].item() == pytest.approx(0.3) and k.grad_scales[1] == 1.0


def test_warmup_untracked_and_switches():
    dtm = DynamicTrainingMonitor(3, DTMConfig(warmup_epochs=1))
    _epoch(dtm, [0.5, 2.0, NAN])
    assert torch.equal(dtm.loss_weights, torch.ones(3)) and torch.equal(dtm.grad_scales, torch.ones(3))
    _epoch(dtm, [0.5, 2.0, NAN])
    assert dtm.loss_weights[1] > dtm.loss_weights[0] and dtm.grad_scales[0] < 1 and dtm.grad_scales[2] == 1
    single = DynamicTrainingMonitor(3)
    _epoch(single, [0.5, NAN, NAN])                    # one tracked sequence: nothing to compare
    assert torch.equal(single.loss_weights, torch.ones(3))
    off = DynamicTrainingMonitor(2, DTMConfig(update_loss_weights=False, scale_gradients=False))
    _epoch(off, [0.1, 5.0])
    assert torch.equal(off.loss_weights, torch.ones(2)) and torch.equal(off.grad_scales, torch.ones(2))
    with pytest.raises(ValueError):
        DTMConfig(beta_min=0.0)
    with pytest.raises(ValueError):
        DTMConfig(ema_momentum=1.0)


def test_scale_encoder_gradients_in_place():
    torch.manual_seed(0)
    encoders = nn.ModuleList([nn.Linear(3, 2), nn.Linear(3, 2), nn.Linear(3, 2)])
    x = torch.randn(4, 3)
    sum(enc(x).pow(2).sum() for enc in encoders[:2]).backward()   # encoder 2 gets no grad
    before = [[p.grad.clone() for p in enc.parameters()] for enc in encoders[:2]]
    dtm = DynamicTrainingMonitor(3)
    _epoch(dtm, [0.2, 1.0, 1.0])
    k = dtm.grad_scales
    assert k[0] < 1.0 and k[1] == 1.0
    dtm.scale_encoder_gradients(encoders)
    for m in range(2):
        for p, g in zip(encoders[m].parameters(), before[m]):
            assert torch.allclose(p.grad, g * k[m])
    assert all(p.grad is None for p in encoders[2].parameters())
    with pytest.raises(ValueError):
        dtm.scale_encoder_gradients(encoders[:2])


def test_state_round_trip_weights_only(tmp_path):
    dtm = DynamicTrainingMonitor(4)
    _epoch(dtm, [0.5, 1.0, NAN, 2.0])
    _epoch(dtm, [0.4, 1.0, 3.0, 1.5])
    dtm.update(torch.tensor([0.3, NAN, 2.0, 1.0]))
    path = tmp_path / "ckpt.pt"
    torch.save({"dtm": dtm.state_dict()}, path)
    state = torch.load(path, weights_only=True)["dtm"]
    new = DynamicTrainingMonitor(4)
    new.load_state_dict(state)
    assert torch.equal(new.loss_weights, dtm.loss_weights) and torch.equal(new.grad_scales, dtm.grad_scales)
    assert torch.allclose(new.gap_ema, dtm.gap_ema, equal_nan=True) and new.epoch == dtm.epoch == 2
    for mon in (dtm, new):
        _epoch(mon, [0.2, 1.2, 2.5, 1.0])
    assert torch.equal(new.loss_weights, dtm.loss_weights) and torch.equal(new.grad_scales, dtm.grad_scales)
    with pytest.raises(ValueError):
        DynamicTrainingMonitor(3).load_state_dict(state)


def test_per_step_methods_read_no_tensor_value():
    """update() and scale_encoder_gradients() never read a value on the host, so on a GPU they
    never wait for the step: on the meta device (no data) any such read would raise."""
    encoders = nn.ModuleList([nn.Linear(3, 2), nn.Linear(3, 2), nn.Linear(3, 2)])
    dtm = DynamicTrainingMonitor(3)
    _epoch(dtm, [0.2, 1.0, 1.0])
    assert dtm.grad_scales[0] < 1.0
    dtm.to("meta")
    assert dtm.device.type == "meta" and dtm.loss_weights.device.type == "meta"
    dtm.update(torch.tensor([0.3, NAN, 1.0], device="meta"))
    encoders.to("meta")
    for p in encoders.parameters():
        p.grad = torch.ones_like(p)
    dtm.scale_encoder_gradients(encoders)
    with pytest.raises((RuntimeError, NotImplementedError)):
        bool(dtm.gap_ema[0] > 0)  # what would have been a host read is refused here


def test_to_device_keeps_values_and_update_matches():
    a, b = DynamicTrainingMonitor(3), DynamicTrainingMonitor(3)
    _epoch(a, [0.5, NAN, 2.0])
    b.load_state_dict(a.state_dict())
    b.to("cpu")
    for mon in (a, b):
        mon.update(torch.tensor([0.4, 1.0, float("inf")]))
    assert torch.equal(a.gap_ema, b.gap_ema) and torch.equal(a.counts, b.counts)
    assert all(t.device.type == "cpu" for t in a.state_dict().values() if isinstance(t, torch.Tensor))
