"""SWDLLoss: the terms against MONAI / torch, the labelled / unlabelled split, the consistency term, the
side-head weights and the gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medmodal.losses.swdl import SIDE_WEIGHTS, SWDLLoss
from medmodal.models import create_model
from medmodal.models.segmentation.swdl_net import SWDLOutputs

K, SIZE = 3, (4, 6, 5)


def _outputs(b=4, seed=0, requires_grad=True) -> SWDLOutputs:
    g = torch.Generator().manual_seed(seed)

    def logits():
        return torch.randn(b, K, *SIZE, generator=g).requires_grad_(requires_grad)

    return SWDLOutputs(dc=logits(), lap=logits(), sides=[logits() for _ in range(5)])


def _labels(b=4, seed=1) -> torch.Tensor:
    return torch.randint(0, K, (b, *SIZE), generator=torch.Generator().manual_seed(seed))


def test_terms_are_finite_and_match_monai_and_torch():
    from monai.losses import DiceLoss

    out, y, l = _outputs(), _labels(), 2
    terms = SWDLLoss()(out, y, l, consistency_weight=0.3)
    assert set(terms) == {"loss", "dice_dc", "ce_lap", "deep_supervision", "consistency"}
    assert all(torch.isfinite(v) and v.ndim == 0 for v in terms.values())
    monai = DiceLoss(include_background=False, to_onehot_y=True, softmax=True, squared_pred=True, batch=True)
    torch.testing.assert_close(terms["dice_dc"], monai(out.dc[:l], y[:l, None]).detach())
    torch.testing.assert_close(terms["ce_lap"], F.cross_entropy(out.lap[:l], y[:l]).detach())
    ds = sum(w * monai(s[:l], y[:l, None]) for w, s in zip(SIDE_WEIGHTS, reversed(out.sides)))
    torch.testing.assert_close(terms["deep_supervision"], ds.detach())
    cons = F.mse_loss(out.dc.softmax(1), out.lap.softmax(1))
    torch.testing.assert_close(terms["consistency"], cons.detach())
    total = terms["dice_dc"] + terms["ce_lap"] + terms["deep_supervision"] + 0.3 * terms["consistency"]
    torch.testing.assert_close(terms["loss"].detach(), total)
    assert not any(v.requires_grad for k, v in terms.items() if k != "loss")


def test_consistency_is_zero_when_the_decoders_agree():
    out = _outputs()
    out.lap = out.dc
    terms = SWDLLoss()(out, _labels(), 2)
    assert terms["consistency"] == 0


def test_unlabelled_samples_never_enter_the_supervised_terms():
    out, y = _outputs(), _labels()
    other = y.clone()
    other[2:] = (other[2:] + 1) % K
    loss = SWDLLoss()
    a, b = loss(out, y, 2), loss(out, other, 2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(loss(out, y[:2], 2)["loss"], a["loss"])  # the labelled rows alone
    # without consistency the unlabelled logits get no gradient; with it, both decoders do
    loss(out, y, 2, consistency_weight=0.0)["loss"].backward()
    assert not out.dc.grad[2:].any() and not out.lap.grad[2:].any() and out.dc.grad[:2].any()
    assert all(not s.grad[2:].any() and s.grad[:2].any() for s in out.sides)
    out = _outputs()
    loss(out, y, 2)["loss"].backward()
    assert out.dc.grad[2:].any() and out.lap.grad[2:].any()


def test_no_labelled_sample_leaves_the_consistency_only():
    terms = SWDLLoss()(_outputs(), _labels(), 0, consistency_weight=2.0)
    assert terms["dice_dc"] == terms["ce_lap"] == terms["deep_supervision"] == 0
    torch.testing.assert_close(terms["loss"].detach(), 2.0 * terms["consistency"])


def test_side_weights_pair_finest_first():
    y = _labels()
    perfect = F.one_hot(y, K).movedim(-1, 1).float() * 50
    out = _outputs(requires_grad=False)
    for i in range(5):  # sides are coarse -> fine: only sides[i] is wrong -> its weight times its Dice
        sides = [perfect.clone() for _ in range(5)]
        sides[i] = -perfect
        got = SWDLLoss()(SWDLOutputs(dc=out.dc, lap=out.lap, sides=sides), y, 4)["deep_supervision"]
        torch.testing.assert_close(got, torch.tensor(SIDE_WEIGHTS[4 - i]), atol=1e-4, rtol=0)


def test_gradients_reach_the_model():
    torch.manual_seed(0)
    model = create_model("swdl_net", modalities=("ct",), num_classes=2, n_filters=4).train()
    x = torch.randn(3, 1, 16, 16, 16)
    y = torch.randint(0, 2, (3, 16, 16, 16))
    terms = SWDLLoss()(model.forward_train(x), y, 2, consistency_weight=0.5)
    terms["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing


def test_errors():
    loss, out, y = SWDLLoss(), _outputs(), _labels()
    with pytest.raises(ValueError, match="labelled must be in 0..4"):
        loss(out, y, 5)
    with pytest.raises(ValueError, match="label must be"):
        loss(out, y[:3], 2)
    with pytest.raises(ValueError, match="label must be"):
        loss(out, y[..., :3], 2)
    with pytest.raises(ValueError, match="Laplacian decoder"):
        loss(SWDLOutputs(dc=out.dc), y, 2)
    with pytest.raises(ValueError, match="side heads"):
        loss(SWDLOutputs(dc=out.dc, lap=out.lap, sides=out.sides[:3]), y, 2)
