"""Report -> sentences (the reference's rules) and the sentence-aware tokenisation."""

import json

import pytest
import torch

from medmodal.data.cxr.text import (check_report, count_tokens, is_blank_report, load_tokenizer, report_text,
                                    split_report_into_sentences, tokenize_sentences, too_short)
from medmodal.data.cxr.records import CXRDataError
from tests.data.cxr.conftest import IU_REAL, REPORTS


def test_sentence_rules():
    text = "1. Heart is ENLARGED. 2. No effusion.Clear. Well-expanded lungs, no pneumothorax."
    assert split_report_into_sentences(text) == [
        "heart is enlarged", "no effusion", "well expanded lungs no pneumothorax"]  # 'clear' (1 token) dropped
    assert split_report_into_sentences("Opacité basale\ndroite. Ok") == ["opacit basale droite"]  # ASCII only
    assert split_report_into_sentences("") == []
    assert split_report_into_sentences("There are XXXX sternotomy wires.") == ["there are xxxx sternotomy wires"]


def test_report_text_order_and_short_reports():
    assert report_text("Findings here.", "Impression first.") == "Impression first. Findings here."
    assert report_text(None, "Only impression.") == "Only impression."
    assert too_short(split_report_into_sentences("No acute. Normal."))  # 4 tokens, kept? 'no acute' + 'normal' dropped
    assert count_tokens(["no acute", "a b c"]) == 5
    assert not too_short(["no acute disease"])


def test_blank_reports_are_bad_input():
    assert is_blank_report("") and is_blank_report("XXXX. XXXX XXXX.") and is_blank_report("___ ___")
    assert not is_blank_report("XXXX clear lungs")
    with pytest.raises(CXRDataError, match="only de-identification"):
        check_report("XXXX XXXX.", "a.json: entry 3")
    with pytest.raises(CXRDataError, match="a.txt: report is empty"):
        check_report("  ", "a.txt")


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


def reference_tokenisation(tokenizer, sentences, max_length):
    """Per-sentence reference (the reference code's way): tokenise each sentence alone, 1 index per token."""
    ids, index = [tokenizer.cls_token_id], [-1]
    for j, sentence in enumerate(sentences):
        piece = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(sentence))
        ids += piece
        index += [j] * len(piece)
    ids, index = ids[: max_length - 1] + [tokenizer.sep_token_id], index[: max_length - 1] + [-1]
    return ids, index


def real_reports(limit=300):
    if IU_REAL.is_dir():
        data = json.loads((IU_REAL / "annotation_flat_names.json").read_text())
        return [e["report"] for v in data.values() for e in v][:limit]
    return REPORTS


@pytest.mark.parametrize("max_length", [256, 24])
def test_both_methods_match_per_sentence_reference(tokenizer, max_length):
    reports = [split_report_into_sentences(r) for r in real_reports()]
    reports = [r for r in reports if r]
    for method in ("offsets", "per_sentence"):
        for start in range(0, len(reports), 64):
            chunk = reports[start:start + 64]
            out = tokenize_sentences(tokenizer, chunk, max_length=max_length, max_sentences=100, method=method)
            for b, sentences in enumerate(chunk):
                ids, index = reference_tokenisation(tokenizer, sentences, max_length)
                n = len(ids)
                assert out["input_ids"][b, :n].tolist() == ids, (method, sentences)
                assert out["sentence_index"][b, :n].tolist() == index
                assert out["attention_mask"][b].sum() == n
                assert out["num_sentences"][b] == len({i for i in index if i >= 0})
                assert (out["sentence_index"][b, n:] == -1).all()


def test_tokenisation_contract(tokenizer):
    reports = [["no pleural effusion", "heart is enlarged"], ["lungs clear"] * 20, ["a b"]]
    out = tokenize_sentences(tokenizer, reports, max_length=256, max_sentences=16, pad_to_multiple_of=8)
    assert out["input_ids"].dtype == torch.int64 and out["input_ids"].shape[1] % 8 == 0
    assert out["num_sentences"].tolist() == [2, 16, 1]  # max_sentences cuts the second report
    first = out["sentence_index"][0]
    assert first[0] == -1 and first.max() == 1
    sep = out["input_ids"][0].tolist().index(tokenizer.sep_token_id)
    assert first[sep] == -1 and (out["attention_mask"][0, sep + 1:] == 0).all()
    # truncation: a sentence whose tokens are all cut off is not counted
    cut = tokenize_sentences(tokenizer, [["one two three", "four five six", "seven eight"]], max_length=6)
    assert cut["num_sentences"].tolist() == [2] and cut["input_ids"].shape == (1, 6)
    assert cut["sentence_index"][0].tolist() == [-1, 0, 0, 0, 1, -1]
    empty = tokenize_sentences(tokenizer, [[]])
    assert empty["num_sentences"].tolist() == [0] and empty["input_ids"].shape == (1, 2)


def test_tokenizer_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="tokenizer folder not found"):
        load_tokenizer(tmp_path / "nope")
    with pytest.raises(ValueError, match="not a Hugging Face tokenizer"):
        load_tokenizer(tmp_path)
