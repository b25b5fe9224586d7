"""The unsupervised terms of the semi-supervised segmentation methods, for 2-D (``[B, C, H, W]``) and 3-D
(``[B, C, D, H, W]``) logits alike.

==============================  ===================================================================================
term                            source
==============================  ===================================================================================
:func:`softmax_mse`             Mean Teacher (Tarvainen & Valpola, NeurIPS 2017); SSL4MIS ``losses.softmax_mse_loss``
:func:`predictive_entropy`      UA-MT (Yu et al., MICCAI 2019): entropy of the mean of T noisy teacher passes
:func:`uncertainty_masked_mse`  UA-MT: the consistency kept where the teacher is certain
:func:`cross_pseudo_supervision`  CPS (Chen et al., CVPR 2021): each network learns the other's argmax
:func:`prototype_similarity`,   ERANet's prototype consistency alignment (Li et al., arXiv 2502.07331; release
:func:`prototype_consistency`   ``code/networks/unet_loss.py``, ``code/utils/losses.py``)
==============================  ===================================================================================

Everything here is a plain function of tensors: the schedules (ramps, thresholds) and the networks (teachers,
peers) are the engine's (:mod:`medmodal.engine.semi`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["softmax_mse", "predictive_entropy", "uncertainty_threshold", "uncertainty_masked_mse",
           "cross_pseudo_supervision", "prototype_similarity", "prototype_consistency"]


def softmax_mse(student_logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
    """Mean over all elements of ``(softmax(student_logits) - teacher_probs) ** 2`` (SSL4MIS's
    ``softmax_mse_loss`` followed by ``torch.mean``, as its Mean Teacher scripts do).

    Args:
        student_logits: ``[B, C, *spatial]``.
        teacher_probs: ``[B, C, *spatial]`` probabilities (no gradient is taken through them by the caller).
    """
    return ((student_logits.softmax(1) - teacher_probs) ** 2).mean()


def predictive_entropy(probs: torch.Tensor) -> torch.Tensor:
    """``-sum_c p_c log(p_c + 1e-6)`` per element, ``[B, 1, *spatial]`` in nats (UA-MT's uncertainty; the ``1e-6``
    is the release's).

    Args:
        probs: ``[B, C, *spatial]`` mean softmax of the teacher's noisy passes.
    """
    return -(probs * torch.log(probs + 1e-6)).sum(1, keepdim=True)


def uncertainty_threshold(progress: float, max_entropy: float = math.log(2)) -> float:
    """UA-MT's schedule ``(0.75 + 0.25 * progress) * max_entropy``: the threshold rises from 3/4 of ``max_entropy``
    to all of it as ``progress`` (a ramp in ``[0, 1]``; UA-MT: ``sigmoid_rampup(iteration, max_iterations)``) grows.

    ``max_entropy`` defaults to ``ln 2`` as in both reference codes (UA-MT's LA task is binary; SSL4MIS's 2-D script
    keeps ``np.log(2)`` for ACDC's 4 classes, whose maximum entropy is ``ln 4``: a stricter mask).
    """
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must be in [0, 1], got {progress}")
    return (0.75 + 0.25 * progress) * max_entropy


def uncertainty_masked_mse(student_logits: torch.Tensor, teacher_probs: torch.Tensor, uncertainty: torch.Tensor,
                           threshold: float) -> torch.Tensor:
    """UA-MT's consistency: ``sum(mask * (softmax(s) - t) ** 2) / (2 * sum(mask) + 1e-16)`` with
    ``mask = uncertainty < threshold``; the numerator sums over classes, the mask count does not, and the 2 is the
    release's (``yulequan/UA-MT`` ``train_LA_meanteacher_certainty_unlabel.py``; SSL4MIS keeps it).

    Args:
        student_logits: ``[B, C, *spatial]``. teacher_probs: ``[B, C, *spatial]``.
        uncertainty: ``[B, 1, *spatial]`` (:func:`predictive_entropy`). threshold: in nats.
    """
    mask = (uncertainty < threshold).to(student_logits.dtype)
    dist = (student_logits.softmax(1) - teacher_probs) ** 2
    return (mask * dist).sum() / (2 * mask.sum() + 1e-16)


def cross_pseudo_supervision(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """``CE(logits_a, argmax logits_b) + CE(logits_b, argmax logits_a)`` (CPS; SSL4MIS
    ``train_cross_pseudo_supervision_2D.py``: on the unlabelled part of the batch, hard labels, no threshold).

    Args:
        logits_a, logits_b: ``[B, C, *spatial]`` of the two networks on the same images.
    """
    target_a, target_b = logits_a.detach().argmax(1), logits_b.detach().argmax(1)
    return F.cross_entropy(logits_a, target_b) + F.cross_entropy(logits_b, target_a)


def prototype_similarity(features: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every pixel's feature to the class prototypes of its own image, ``[B, C, *spatial]``.

    A prototype (per image and class) is the ``probs``-weighted mean of ``features``:
    ``sum_p q_c(p) f(p) / (sum_p q_c(p) + 1e-5)`` (ERANet's ``masked_average_pooling``; the soft mask is the
    network's own softmax). ERANet also computes the similarity to the other images' prototypes and an agreement
    weight, both unused in its loss; they are left out.

    Args:
        features: ``[B, F, *spatial]`` the last decoder features (before the output convolution).
        probs: ``[B, C, *spatial]`` the softmax of the segmentation logits (same spatial size).
    """
    b, f = features.shape[:2]
    flat_f = features.reshape(b, f, -1)                        # [B, F, N]
    flat_q = probs.reshape(b, probs.shape[1], -1)              # [B, C, N]
    protos = torch.einsum("bcn,bfn->bcf", flat_q, flat_f) / (flat_q.sum(-1, keepdim=True) + 1e-5)
    sim = torch.einsum("bfn,bcf->bcn", F.normalize(flat_f, dim=1), F.normalize(protos, dim=2))
    return sim.reshape(b, probs.shape[1], *features.shape[2:])


def prototype_consistency(features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """ERANet's prototype consistency alignment: ``mean((softmax(similarity).detach() - softmax(logits)) ** 2)``
    over classes (softmax of the cosine similarities, no temperature, as the release's
    ``weight_self_pro_softmax_mse_loss`` followed by ``torch.mean``).

    Args:
        features: ``[B, F, *spatial]`` last decoder features. logits: ``[B, C, *spatial]``.
    """
    sim = prototype_similarity(features, logits.softmax(1))
    return ((sim.detach().softmax(1) - logits.softmax(1)) ** 2).mean()
