"""The MICS pre-training objective (losses/paired.py): the three terms, the id-aware queue, the
adversarial variants, and its values against the implementation it was moved from."""

from __future__ import annotations

import pytest
import torch

from medmodal.losses import MICSObjective, StepContext, build_objective
from medmodal.losses.paired import contrastive_term
from medmodal.models import create_model

TINY = {"arch": "vit_tiny_patch16_224", "image_size": 32,
        "encoder_kwargs": {"patch_size": 8, "depth": 1, "embed_dim": 32, "num_heads": 2}}
PRE = {**TINY, "embed_dim": 16, "queue_size": 8, "decoder_dim": 16, "decoder_depth": 1, "decoder_heads": 2}


def mics_losses(model, wli, nbi, update=None, sample_ids=None) -> dict:
    return MICSObjective()({"wli": wli, "nbi": nbi}, StepContext(model=model, update=update, sample_ids=sample_ids))


def test_pretrainer_losses_and_encoder_transfer():
    torch.manual_seed(0)
    pre = create_model("mics_pretrain", **PRE)
    w, n = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)
    out = mics_losses(pre, w, n)
    assert set(out) == {"loss", "reconstruction", "contrastive", "adversarial", "discriminator_accuracy"}
    assert all(torch.isfinite(v) for v in out.values())
    expected = 10 * out["reconstruction"] + out["contrastive"] + 0.1 * out["adversarial"]
    assert torch.allclose(out["loss"], expected)
    out["loss"].backward()
    assert int(pre.queue_ptr) == 4  # keys enqueued
    clf = create_model("mics", num_classes=3, fusion_depth=1, **TINY)
    assert clf.load_encoders(pre.encoder_state_dict()) == ["wli", "nbi"]
    for m in ("wli", "nbi"):
        for a, b in zip(clf.encoders[m].parameters(), pre.encoders[m].parameters()):
            assert torch.equal(a, b)
    other = create_model("mics", num_classes=3, fusion_depth=1, **{**TINY, "encoder_kwargs": {
        "patch_size": 8, "depth": 1, "embed_dim": 64, "num_heads": 2}})
    with pytest.raises(ValueError, match="does not fit"):
        other.load_encoders(pre.encoder_state_dict())


def test_queue_never_holds_a_pairs_own_key_as_negative():
    """A pair's older momentum key in the queue is masked out of its negatives (false negative otherwise)."""
    from medmodal.models.endoscopy.pretrain import sample_id_keys

    torch.manual_seed(0)
    pre = create_model("mics_pretrain", **{**PRE, "recon_weight": 0, "adversarial_weight": 0, "queue_size": 4})
    w, n = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    ids = sample_id_keys(["case_a", "case_b"])
    assert ids.dtype == torch.long and (ids >= 0).all() and torch.equal(ids, sample_id_keys(["case_a", "case_b"]))
    mics_losses(pre, w, n, sample_ids=ids)  # enqueue the pair keys with their ids
    assert torch.equal(pre.queue_ids[:2], ids) and (pre.queue_ids[2:] == -1).all()
    tokens = {m: pre.encoders[m](x) for m, x in (("wli", w), ("nbi", n))}
    images = {"wli": w, "nbi": n}
    masked = contrastive_term(pre, tokens, images, update=False, sample_ids=ids)
    # by hand: per query, InfoNCE over the batch keys and the queued keys of *other* pairs only
    z = {m: torch.nn.functional.normalize(pre.projections[m](tokens[m].mean(1)), dim=-1) for m in images}
    k = {m: torch.nn.functional.normalize(pre.momentum_projections[m](pre.momentum_encoders[m](images[m]).mean(1)),
                                          dim=-1) for m in images}
    expected = 0.0
    for a, b in (("wli", "nbi"), ("nbi", "wli")):
        queue = getattr(pre, f"queue_{b}")
        for i in range(2):
            keys = torch.cat([k[b], queue[pre.queue_ids != ids[i]]])
            expected = expected + torch.nn.functional.cross_entropy(z[a][i:i + 1] @ keys.t() / 0.07,
                                                                    torch.tensor([i])) / 4
    assert torch.allclose(masked, expected, atol=1e-5)
    unmasked = contrastive_term(pre, tokens, images, update=False)  # without ids nothing is masked
    assert not torch.allclose(unmasked, masked, atol=1e-4)
    other = contrastive_term(pre, tokens, images, update=False, sample_ids=sample_id_keys(["case_c", "case_d"]))
    assert torch.allclose(other, unmasked, atol=1e-6)


def test_adversarial_term_trains_the_encoders_with_reversed_gradient():
    """The released code's adversarial term sends no gradient to the encoders; here it must, reversed."""
    torch.manual_seed(0)
    pre = create_model("mics_pretrain", **{**PRE, "recon_weight": 0, "contrastive_weight": 0,
                                           "adversarial_weight": 1.0, "grl_lambda": 1.0})
    w, n = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    mics_losses(pre, w, n)["loss"].backward()
    param = pre.encoders["wli"].backbone.patch_embed.proj.weight
    reversed_grad = param.grad.clone()
    assert reversed_grad.abs().sum() > 0
    pre.zero_grad()
    # the same loss without reversal: the encoder gradient must be the exact negative
    pre.config.grl_lambda = -1.0
    mics_losses(pre, w, n)["loss"].backward()
    assert torch.allclose(param.grad, -reversed_grad, atol=1e-6)
    # the discriminator itself is trained normally (same gradient either way)
    assert pre.discriminator[0].weight.grad.abs().sum() > 0


def test_non_saturating_adversarial_objective_keeps_encoder_gradient_when_discriminator_wins():
    """GRL sends the encoders -(p - y), ~0 once the discriminator is sure; the flipped-label loss does not vanish."""
    torch.manual_seed(0)
    kw = {**PRE, "recon_weight": 0, "contrastive_weight": 0, "adversarial_weight": 1.0}
    grads = {}
    for objective in ("grl", "non_saturating"):
        pre = create_model("mics_pretrain", **{**kw, "adversarial_objective": objective})
        torch.manual_seed(1)
        w, n = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32) + 3.0
        with torch.no_grad():  # a discriminator that already wins: the last layer says "NBI" iff feature 0 is large
            tokens = {m: pre.encoders[m](x) for m, x in (("wli", w), ("nbi", n))}
            pre.discriminator[0].weight.zero_()
            pre.discriminator[0].bias.zero_()
            diff = tokens["nbi"].mean((0, 1)) - tokens["wli"].mean((0, 1))
            pre.discriminator[0].weight[0] = diff / diff.norm()
            centre = (tokens["nbi"].mean((0, 1)) + tokens["wli"].mean((0, 1))) / 2 @ pre.discriminator[0].weight[0]
            pre.discriminator[0].bias[0] = -centre
            pre.discriminator[2].weight.zero_()
            pre.discriminator[2].weight[0, 0] = 200.0
        out = mics_losses(pre, w, n)
        assert float(out["discriminator_accuracy"]) > 0.95
        out["loss"].backward()
        grads[objective] = pre.encoders["wli"].backbone.patch_embed.proj.weight.grad.norm()
        assert pre.discriminator[0].weight.grad.abs().sum() > 0  # the discriminator is trained either way
    assert grads["non_saturating"] > 100 * grads["grl"]
    with pytest.raises(ValueError, match="adversarial_objective"):
        create_model("mics_pretrain", **{**PRE, "adversarial_objective": "wgan"})


def test_zero_weight_terms_are_skipped_and_all_zero_refused():
    pre = create_model("mics_pretrain", **{**PRE, "recon_weight": 0, "adversarial_weight": 0})
    out = mics_losses(pre, torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32))
    values = {k: float(v.detach()) for k, v in out.items()}
    assert values["reconstruction"] == 0 and values["adversarial"] == 0 and values["contrastive"] > 0
    with pytest.raises(ValueError, match="loss weights"):
        create_model("mics_pretrain", **{**PRE, "recon_weight": 0, "adversarial_weight": 0, "contrastive_weight": 0})


def test_cnn_encoder_pretraining_masks_pixels():
    pre = create_model("mics_pretrain", arch="resnet18", image_size=64, embed_dim=16, queue_size=8, decoder_dim=16,
                       decoder_depth=1, decoder_heads=2)
    out = mics_losses(pre, torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64))
    assert torch.isfinite(out["loss"])


#: computed with ``MICSPretrainer.compute_losses`` on the tree before the move (commit a3d1149), same inputs
BEFORE_MOVE = {'grl': [{'adversarial': 0.6926978230476379,
          'contrastive': 7.652962684631348,
          'discriminator_accuracy': 0.5520833134651184,
          'loss': 20.951730728149414,
          'reconstruction': 1.3229498863220215},
         {'adversarial': 0.6926978230476379,
          'contrastive': 7.502970218658447,
          'discriminator_accuracy': 0.5520833134651184,
          'loss': 20.909189224243164,
          'reconstruction': 1.3336949348449707},
         {'adversarial': 0.6926978230476379,
          'contrastive': 6.8419389724731445,
          'discriminator_accuracy': 0.5520833134651184,
          'loss': 20.178815841674805,
          'reconstruction': 1.3267607688903809},
         {'grad_abs_sum': 14260.938681644398, 'mom_sum': 191.4151079393383, 'queue_sum': -4.929503548424691},
         {'adversarial': 0.6926978230476379,
          'contrastive': 3.3030991554260254,
          'discriminator_accuracy': 0.5520833134651184,
          'loss': 16.78715705871582,
          'reconstruction': 1.3414788246154785}],
 'non_saturating': [{'adversarial': 1.400787353515625,
                     'contrastive': 7.652962684631348,
                     'discriminator_accuracy': 0.5520833134651184,
                     'loss': 21.022541046142578,
                     'reconstruction': 1.3229498863220215},
                    {'adversarial': 1.400787353515625,
                     'contrastive': 7.502970218658447,
                     'discriminator_accuracy': 0.5520833134651184,
                     'loss': 20.979999542236328,
                     'reconstruction': 1.3336949348449707},
                    {'adversarial': 1.400787353515625,
                     'contrastive': 6.8419389724731445,
                     'discriminator_accuracy': 0.5520833134651184,
                     'loss': 20.24962615966797,
                     'reconstruction': 1.3267607688903809},
                    {'grad_abs_sum': 14260.986609414325,
                     'mom_sum': 191.4151079393383,
                     'queue_sum': -4.929503548424691},
                    {'adversarial': 1.400787353515625,
                     'contrastive': 3.3030991554260254,
                     'discriminator_accuracy': 0.5520833134651184,
                     'loss': 16.857967376708984,
                     'reconstruction': 1.3414788246154785}]}


@pytest.mark.parametrize("adversarial", ["grl", "non_saturating"])
def test_values_equal_the_implementation_before_the_move(adversarial):
    """The values of the model methods this objective was moved from (3 training steps with the queue
    filling, ids from the second step on, gradients, queue, EMA, then one frozen evaluation step). Recorded on
    one thread, bit-identical there at the move; compared here to 1e-5 on one thread, so that another CPU's
    kernels do not fail it while any change of a formula does."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _check_values_before_the_move(adversarial)
    finally:
        torch.set_num_threads(threads)


def _check_values_before_the_move(adversarial):
    from medmodal.models.endoscopy.pretrain import sample_id_keys

    torch.manual_seed(0)
    pre = create_model("mics_pretrain", adversarial_objective=adversarial, **PRE).train()
    g = torch.Generator().manual_seed(3)
    w, n = torch.randn(3, 3, 32, 32, generator=g), torch.randn(3, 3, 32, 32, generator=g)
    ids = sample_id_keys(["a", "b", "c"])
    objective = build_objective("mics")
    torch.manual_seed(5)
    got = []
    for step in range(3):
        out = objective({"wli": w, "nbi": n}, StepContext(model=pre, sample_ids=ids if step else None))
        out["loss"].backward()
        got.append({k: v.item() for k, v in out.items()})
    grad = sum(p.grad.double().abs().sum().item() for p in pre.parameters() if p.grad is not None)
    got.append({"grad_abs_sum": grad, "queue_sum": pre.queue_wli.double().sum().item(),
                "mom_sum": sum(p.double().sum().item() for p in pre.momentum_encoders.parameters())})
    pre.eval()
    with torch.no_grad():
        out = objective({"wli": w, "nbi": n}, StepContext(model=pre, update=False, sample_ids=ids))
    got.append({k: v.item() for k, v in out.items()})
    expected = BEFORE_MOVE[adversarial]
    assert [sorted(row) for row in got] == [sorted(row) for row in expected]
    for row, want in zip(got, expected):
        for key, value in want.items():
            assert row[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
