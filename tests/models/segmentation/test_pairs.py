"""Static-shape pair selection (what torch.compile traces) gives the eager results, in one graph."""

from __future__ import annotations

import pytest
import torch

from medmodal.losses.dmafnet_loss import DMAFNetLoss, DMAFNetLossConfig
from medmodal.models import create_model
from medmodal.models.segmentation.pairs import gather_pairs, pair_indices, scatter_pairs, static_pair_shapes, use_static_shapes

MODALITIES = ("a", "b", "c", "d")
MASK = torch.tensor([[True, False, True, True], [False, True, False, False], [True, True, True, True]])
LOSS_OPTIONS = dict(self_distill_weight=0.5, preference_weighting=True)  # every pair term on


def _setup(seed=0):
    torch.manual_seed(seed)
    model = create_model("dmafnet", modalities=MODALITIES, num_classes=4, widths=(4, 8, 16), token_grid=2,
                         num_heads=2, depth=1)
    criterion = DMAFNetLoss(DMAFNetLossConfig(**LOSS_OPTIONS), feature_channels=16, num_modalities=4, num_classes=4)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 4, 16, 16, 16, generator=g)
    y = torch.randint(0, 4, (3, 16, 16, 16), generator=g)
    return model, criterion, x, y


def _step(model, criterion, x, y, weights):
    total, terms, gaps = criterion(model.forward_train(x, MASK), y, sequence_weights=weights)
    return total, terms, gaps


def _loss_and_grads(static: bool):
    model, criterion, x, y = _setup()
    weights = torch.tensor([0.8, 1.3, 1.0, 0.9])
    with static_pair_shapes(static):
        total, terms, gaps = _step(model, criterion, x, y, weights)
    total.backward()
    params = list(model.named_parameters()) + list(criterion.named_parameters())
    grads = {name: p.grad.clone() if p.grad is not None else None for name, p in params}
    return total.detach(), terms, gaps, grads


def test_pair_helpers_both_modes():
    x = torch.arange(3 * 4, dtype=torch.float32).reshape(3, 4) + 1
    x[1, 0] = float("nan")  # absent entry: must not leak in either mode
    for static in (False, True):
        with static_pair_shapes(static):
            assert use_static_shapes() is static
            bi, mi = pair_indices(MASK)
            rows = gather_pairs(x, bi, mi, MASK)
            assert len(rows) == (12 if static else int(MASK.sum()))
            out = scatter_pairs(rows * 2, bi, mi, MASK)
        assert torch.equal(out, torch.where(MASK, 2 * x, torch.zeros(())))
    assert not use_static_shapes()


def test_static_training_step_equals_eager():
    """Every loss term, the DTM gaps and every gradient agree; absent encoders get exactly zero."""
    eager, static = _loss_and_grads(False), _loss_and_grads(True)
    torch.testing.assert_close(static[0], eager[0], rtol=1e-5, atol=1e-6)
    assert static[1].keys() == eager[1].keys() and "self_distill" in eager[1]
    for name in eager[1]:
        torch.testing.assert_close(static[1][name], eager[1][name], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(static[2], eager[2], rtol=1e-5, atol=1e-6, equal_nan=True)
    for name, grad in eager[3].items():
        other = static[3][name]
        if grad is None:
            assert other is None or not other.any(), name
            continue
        assert torch.isfinite(other).all(), name
        torch.testing.assert_close(other, grad, rtol=1e-4, atol=1e-6, msg=lambda m: f"{name}: {m}")


def test_whole_training_step_traces_as_one_graph():
    """No graph break in forward_train + the full loss: it can compile with fullgraph=True."""
    model, criterion, x, y = _setup()
    weights = torch.ones(4)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(lambda *a: _step(model, criterion, *a)[0])(x, y, weights)
    reasons = [str(b.reason).splitlines()[0] for b in explanation.break_reasons]
    assert explanation.graph_break_count == 0, reasons
    assert explanation.graph_count == 1


@pytest.mark.slow
def test_compiled_training_step_matches_eager():
    """torch.compile(fullgraph=True) on CPU (inductor): same loss and gradients as eager."""
    model, criterion, x, y = _setup()
    weights = torch.ones(4)
    eager_total = _step(model, criterion, x, y, weights)[0]
    eager_total.backward()
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    torch._dynamo.reset()
    compiled = torch.compile(lambda *a: _step(model, criterion, *a)[0], fullgraph=True)
    total = compiled(x, y, weights)
    total.backward()
    torch.testing.assert_close(total, eager_total, rtol=1e-4, atol=1e-5)
    for p, g in zip(model.parameters(), eager_grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-3, atol=1e-5)
