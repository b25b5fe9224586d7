"""Retrieval R@K with its exact chance level, zero-shot AUROC from prompts, and the written report."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from medmodal.evaluation.image_text import (format_evaluation_tables, retrieval_chance, retrieval_metrics,
                                            write_evaluation_report, zero_shot_auroc)


def test_perfect_embeddings_retrieve_every_pair():
    emb = torch.eye(6)
    out = retrieval_metrics(emb, emb, [f"r{i}" for i in range(6)], ks=(1, 5))
    assert out["image_to_report"] == {"R@1": 1.0, "R@5": 1.0} == out["report_to_image"]
    assert out["chance"]["R@1"] == pytest.approx(1 / 6) and out["chance"]["R@5"] == pytest.approx(5 / 6)


def test_identical_reports_count_as_hits_and_lower_nothing_else():
    image = torch.eye(4)
    text = image[[1, 0, 2, 3]]  # pairs 0 and 1 swapped
    unique = retrieval_metrics(image, text, ["a", "b", "c", "d"], ks=(1,))
    assert unique["image_to_report"]["R@1"] == 0.5
    shared = retrieval_metrics(image, text, ["same", "same", "c", "d"], ks=(1,))
    assert shared["image_to_report"]["R@1"] == 1.0 and shared["unique_reports"] == 3


def test_chance_is_the_exact_expectation_of_a_random_ranking():
    relevant = torch.tensor([2, 2, 1, 1])  # N = 4
    expected = ((1 - math.comb(2, 1) / math.comb(4, 1)) * 2 + (1 - math.comb(3, 1) / math.comb(4, 1)) * 2) / 4
    assert retrieval_chance(relevant, 1) == pytest.approx(expected)
    # Monte-Carlo check of the same definition
    g = torch.Generator().manual_seed(0)
    keys = ["x", "x", "y", "z"]
    hits = 0.0
    for _ in range(4000):
        image = F.normalize(torch.randn(4, 8, generator=g), dim=-1)
        text = F.normalize(torch.randn(4, 8, generator=g), dim=-1)
        hits += retrieval_metrics(image, text, keys, ks=(1,))["image_to_report"]["R@1"]
    assert hits / 4000 == pytest.approx(expected, abs=0.03)


class PromptModel(torch.nn.Module):
    """Text embedding e0 when the report starts with "no", else e1 (first token after [CLS])."""

    def __init__(self, no_id: int):
        super().__init__()
        self.no_id = no_id

    def encode_text(self, input_ids, attention_mask, sentence_index, num_sentences):
        negative = (input_ids[:, 1] == self.no_id).float()[:, None]
        return negative * torch.tensor([1.0, 0.0]) + (1 - negative) * torch.tensor([0.0, 1.0])


def test_zero_shot_auroc_from_prompts():
    from medmodal.data.cxr.text import load_tokenizer

    tokenizer = load_tokenizer(None)
    model = PromptModel(tokenizer.convert_tokens_to_ids("no"))
    # images 0-2 look like the positive prompts, 3-5 like the negative ones
    image = F.normalize(torch.tensor([[0.1, 1.0], [0.2, 1.0], [0.3, 1.0], [1.0, 0.1], [1.0, 0.2], [1.0, 0.3]]), dim=-1)
    labels = torch.tensor([[1, 1, 1], [1, 0, 1], [1, -1, 1], [0, 0, 1], [0, float("nan"), 1], [0, 0, 1]])
    prompts = {"Thing": {"positive": ["Thing present."], "negative": ["No thing."]}}
    out = zero_shot_auroc(model, tokenizer, image, labels, ["Pleural Effusion", "Thing", "Edema"], prompts)
    effusion, thing, edema = (out["findings"][k] for k in ("Pleural Effusion", "Thing", "Edema"))
    assert effusion["auroc"] == 1.0 and (effusion["positives"], effusion["negatives"]) == (3, 3)
    assert (thing["positives"], thing["negatives"]) == (1, 3)  # uncertain (-1) and unknown (NaN) left out
    assert edema["auroc"] is None  # a single class: no AUROC
    assert out["mean_auroc"] == pytest.approx((1.0 + thing["auroc"]) / 2)


def test_report_files(tmp_path):
    emb = F.normalize(torch.randn(5, 4, generator=torch.Generator().manual_seed(0)), dim=-1)
    result = {"retrieval": retrieval_metrics(emb, emb, list("abcde")),
              "zero_shot": {"findings": {"Edema": {"auroc": 0.7, "positives": 2, "negatives": 3, "prompts": {}}},
                            "mean_auroc": 0.7}}
    results = {"pretrained": result, "untrained": result}
    text = format_evaluation_tables(results)
    assert "| pretrained | image -> report | 100.0 | 100.0 | 100.0 |" in text and "| Edema | 2 / 3 | 0.700" in text
    paths = write_evaluation_report(tmp_path, results, info={"model": "cmcgns"})
    assert (tmp_path / "evaluation.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["evaluation"]["pretrained"]["zero_shot"]["mean_auroc"] == 0.7
    assert "evaluation.png" in (tmp_path / "report.md").read_text() and set(paths) == {"report", "metrics", "figure"}


def test_pairs_of_one_study_and_no_finding_labels_are_said_so():
    from medmodal.evaluation.image_text import evaluation_notes

    emb = torch.eye(2)
    retrieval = {**retrieval_metrics(emb, emb, ["same", "same"], ks=(1,)), "studies": 1}
    result = {"retrieval": retrieval, "zero_shot": {"findings": {}, "mean_auroc": None}}
    tables = format_evaluation_tables({"pretrained": result})
    assert tables.startswith("Retrieval on 2 held-out image-report pairs of 1 study (1 distinct report), R@K in %:")
    assert tables.endswith("Zero-shot classification: skipped, no finding labels in the test split.")
    assert evaluation_notes(result) == [
        "retrieval: the 2 test pairs share one report, so every retrieval is a hit (R@K = chance = 100 %)",
        "no finding labels in the test split: zero-shot classification skipped"]
    one_per_study = {**retrieval_metrics(emb, emb, ["a", "b"], ks=(1,)), "studies": 2}
    labelled = {"findings": {"Edema": {"auroc": None, "positives": 2, "negatives": 0}}, "mean_auroc": None}
    tables = format_evaluation_tables({"pretrained": {"retrieval": one_per_study, "zero_shot": labelled}})
    assert tables.startswith("Retrieval on 2 held-out studies (2 distinct reports)") and "| Edema | 2 / 0 | n/a |" in tables
    assert evaluation_notes({"retrieval": one_per_study, "zero_shot": labelled}) == [
        "zero-shot AUROC n/a: no finding has both positive and negative test images"]
