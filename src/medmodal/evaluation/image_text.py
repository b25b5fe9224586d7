"""Evaluation of an image-text pre-trained model: cross-modal retrieval and zero-shot classification.

On held-out studies (the test split), with the model's own embeddings
(``encode_image`` / ``encode_text``, L2-normalised, cosine similarity):

* **Retrieval R@K** (K = 1, 5, 10), image -> report and report -> image, over the ``N`` test
  pairs. A hit is a retrieved item whose *report text* equals the query's (identical normal
  reports are common: ``"No acute cardiopulmonary abnormality."``), so duplicates are not
  counted as misses. **Chance level** is exact for this definition: a query with ``r`` relevant
  items among ``N`` has ``1 - C(N - r, K) / C(N, K)`` probability of a hit in a random ranking;
  the table gives its mean over queries (``K / N`` when every report is unique).
* **Zero-shot classification** of each labelled finding from text prompts (GLoRIA / MGCA
  style): score = ``cos(image, mean positive-prompt embedding) - cos(image, mean
  negative-prompt embedding)``; AUROC per finding (``torchmetrics`` ``binary_auroc``) over the
  test images labelled 1 or 0 (uncertain ``-1`` and unknown labels are left out); a finding
  with only one class among them has no AUROC (``None``). Prompts: :data:`DEFAULT_PROMPTS`
  (report-style sentences), or the finding's name and ``"no <name>"``.

:func:`write_evaluation_report` writes ``report.md``, ``metrics.json`` and ``evaluation.png``
into a run folder, the trained model beside the untrained reference when both are given.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

from medmodal.io import atomic_path, atomic_write_json, atomic_write_text

__all__ = ["DEFAULT_PROMPTS", "embed_pairs", "retrieval_metrics", "retrieval_chance", "zero_shot_auroc",
           "evaluate_image_text", "write_evaluation_report", "format_evaluation_tables", "retrieval_heading",
           "has_finding_labels", "evaluation_notes", "REPORT_FILE",
           "METRICS_FILE", "FIGURE_FILE"]

REPORT_FILE = "report.md"
METRICS_FILE = "metrics.json"
FIGURE_FILE = "evaluation.png"
DIRECTIONS = {"image_to_report": "image -> report", "report_to_image": "report -> image"}

#: zero-shot prompts per finding, in the language of chest X-ray reports
DEFAULT_PROMPTS: dict[str, dict[str, list[str]]] = {
    "Atelectasis": {"positive": ["Atelectasis.", "There is atelectasis at the lung base."],
                    "negative": ["No atelectasis.", "The lungs are clear."]},
    "Cardiomegaly": {"positive": ["The heart is enlarged.", "Cardiomegaly."],
                     "negative": ["The heart is normal in size.", "No cardiomegaly."]},
    "Consolidation": {"positive": ["There is focal consolidation.", "Consolidation."],
                      "negative": ["No focal consolidation.", "The lungs are clear."]},
    "Edema": {"positive": ["There is pulmonary edema.", "Interstitial edema."],
              "negative": ["No pulmonary edema.", "No edema."]},
    "Pleural Effusion": {"positive": ["There is a pleural effusion.", "Pleural effusion."],
                         "negative": ["No pleural effusion.", "No effusion."]},
    "Pneumothorax": {"positive": ["There is a pneumothorax.", "Pneumothorax."],
                     "negative": ["No pneumothorax."]},
    "Lung Opacity": {"positive": ["There is an opacity in the lung.", "Airspace disease."],
                     "negative": ["No focal airspace opacity.", "The lungs are clear."]},
    "Nodule": {"positive": ["There is a pulmonary nodule.", "Nodular opacity."],
               "negative": ["No pulmonary nodules.", "No nodules."]},
    "Support Devices": {"positive": ["Sternotomy wires.", "A catheter is in place."],
                        "negative": ["No support devices.", "No lines or tubes."]},
    "Pneumonia": {"positive": ["Pneumonia.", "Findings consistent with pneumonia."],
                  "negative": ["No pneumonia."]},
    "Fracture": {"positive": ["There is a rib fracture."], "negative": ["No fracture."]},
    "No Finding": {"positive": ["No acute cardiopulmonary abnormality."],
                   "negative": ["There is an acute cardiopulmonary abnormality."]},
}


def _to(batch: Mapping, device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}


@torch.no_grad()
def _encode_text(model, text: Mapping[str, torch.Tensor]) -> torch.Tensor:
    out = model.encode_text(text["input_ids"], text["attention_mask"], text["sentence_index"], text["num_sentences"])
    return F.normalize(out.float(), dim=-1)


@torch.no_grad()
def embed_pairs(model, loader, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Embeddings of every pair of ``loader`` (in its order; no shuffling).

    Returns ``{"image": [N, E], "text": [N, E]}`` (L2-normalised float32) and ``"labels"`` ``[N, K]``.
    """
    model.eval()
    device = torch.device(device)
    images, texts, labels = [], [], []
    for batch in loader:
        b = _to(batch, device)
        images.append(F.normalize(model.encode_image(b["image"]).float(), dim=-1).cpu())
        texts.append(_encode_text(model, b).cpu())
        labels.append(batch["labels"].float())
    return {"image": torch.cat(images), "text": torch.cat(texts), "labels": torch.cat(labels)}


def retrieval_chance(relevant: torch.Tensor, k: int) -> float:
    """Mean over queries of ``1 - C(N - r, K) / C(N, K)`` (``relevant``: ``r`` per query, ``N = len``)."""
    n = int(relevant.numel())
    k = min(int(k), n)
    total = 0.0
    for r in relevant.tolist():
        total += 1.0 - math.comb(n - int(r), k) / math.comb(n, k)
    return total / max(1, n)


def retrieval_metrics(image: torch.Tensor, text: torch.Tensor, report_keys: Sequence[str],
                      ks: Sequence[int] = (1, 5, 10)) -> dict:
    """R@K both ways and its chance level (module docstring).

    Args:
        image, text: ``[N, E]`` L2-normalised embeddings of the ``N`` pairs.
        report_keys: one string per pair; equal strings = the same report (hits for each other).

    Returns:
        ``{"n": N, "unique_reports": U, "image_to_report": {"R@K": ...}, "report_to_image": {...},
        "chance": {"R@K": ...}}`` (fractions in [0, 1]).
    """
    n = image.shape[0]
    if n != text.shape[0] or n != len(report_keys) or n == 0:
        raise ValueError(f"retrieval needs N >= 1 equal rows, got {image.shape[0]} images, {text.shape[0]} texts, "
                         f"{len(report_keys)} keys")
    ids = {key: i for i, key in enumerate(dict.fromkeys(report_keys))}
    group = torch.tensor([ids[k] for k in report_keys])
    same = group[:, None] == group[None, :]  # [N, N]: relevant pairs
    sim = image.float() @ text.float().t()  # rows: images, columns: reports
    out = {"n": int(n), "unique_reports": len(ids)}
    for name, scores in (("image_to_report", sim), ("report_to_image", sim.t())):
        order = scores.argsort(dim=1, descending=True)
        hits = torch.gather(same, 1, order)  # [N, N] relevant in ranked order
        first = torch.where(hits.any(1), hits.float().argmax(1), torch.full((n,), n))
        out[name] = {f"R@{k}": float((first < k).float().mean()) for k in ks}
    out["chance"] = {f"R@{k}": retrieval_chance(same.sum(1), k) for k in ks}
    return out


@torch.no_grad()
def prompt_embeddings(model, tokenizer, sentences: Sequence[str], device, max_length: int = 256) -> torch.Tensor:
    """Mean L2-normalised embedding ``[E]`` of prompts (each prompt one one-sentence report)."""
    from medmodal.data.cxr.text import tokenize_sentences

    text = tokenize_sentences(tokenizer, [[s] for s in sentences], max_length=max_length)
    emb = _encode_text(model, _to(text, torch.device(device)))
    return F.normalize(emb.mean(0), dim=-1).cpu()


def zero_shot_auroc(model, tokenizer, image: torch.Tensor, labels: torch.Tensor, label_names: Sequence[str],
                    prompts: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
                    device: torch.device | str = "cpu") -> dict:
    """AUROC per finding of the prompt score (module docstring).

    Returns ``{finding: {"auroc": float | None, "positives": int, "negatives": int, "prompts": {...}}}``
    and ``"mean_auroc"`` over the findings that have one (``None`` if none).
    """
    from torchmetrics.functional.classification import binary_auroc

    table = {**DEFAULT_PROMPTS, **{k: dict(v) for k, v in (prompts or {}).items()}}
    model.eval()
    out: dict = {}
    values = []
    for j, name in enumerate(label_names):
        entry = table.get(name) or {"positive": [f"{name}."], "negative": [f"No {name.lower()}."]}
        pos = prompt_embeddings(model, tokenizer, entry["positive"], device)
        neg = prompt_embeddings(model, tokenizer, entry["negative"], device)
        score = image.float() @ pos - image.float() @ neg
        y = labels[:, j]
        keep = (y == 0) | (y == 1)
        n_pos, n_neg = int((y[keep] == 1).sum()), int((y[keep] == 0).sum())
        auroc = None
        if n_pos and n_neg:
            auroc = float(binary_auroc(score[keep], y[keep].long()))
            values.append(auroc)
        out[name] = {"auroc": auroc, "positives": n_pos, "negatives": n_neg,
                     "prompts": {"positive": list(entry["positive"]), "negative": list(entry["negative"])}}
    return {"findings": out, "mean_auroc": (sum(values) / len(values)) if values else None}


def evaluate_image_text(model, dataset, collator, *, device: torch.device | str = "cpu", ks: Sequence[int] = (1, 5, 10),
                        prompts: Mapping | None = None, batch_size: int = 64) -> dict:
    """Retrieval + zero-shot on ``dataset`` (an :class:`~medmodal.data.cxr.dataset.ImageReportDataset`
    built with ``train=False``), batches from ``collator`` (its tokenizer is used for the prompts).

    Returns ``{"retrieval": retrieval_metrics(...), "zero_shot": zero_shot_auroc(...)}``; the retrieval
    entry also holds ``"studies"``: the distinct study ids among the ``n`` image-report pairs (a study
    with two selected views gives two pairs with the same report).
    """
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collator)
    was_training = model.training
    emb = embed_pairs(model, loader, device)
    keys = [" ".join(s.sentences).lower() for s in dataset.studies]
    retrieval = retrieval_metrics(emb["image"], emb["text"], keys, ks)
    retrieval["studies"] = len({s.study_id for s in dataset.studies})
    result = {"retrieval": retrieval,
              "zero_shot": zero_shot_auroc(model, collator.tokenizer, emb["image"], emb["labels"],
                                           dataset.label_names, prompts, device)}
    model.train(was_training)
    return result


# ---------------------------------------------------------------------------------------------- report
def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def _auc(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def retrieval_heading(retrieval: Mapping) -> str:
    """``Retrieval on N held-out studies (U distinct reports)``, or ``... N held-out image-report pairs
    of S studies ...`` when studies give several pairs (``retrieval["studies"]``, when known)."""
    n, studies, unique = retrieval["n"], retrieval.get("studies"), retrieval["unique_reports"]
    what = (f"{n} held-out studies" if studies is None or studies == n else
            f"{n} held-out image-report pairs of {studies} stud{'ies' if studies != 1 else 'y'}")
    return f"Retrieval on {what} ({unique} distinct report{'s' if unique != 1 else ''})"


def has_finding_labels(zero_shot: Mapping) -> bool:
    """Some finding has a test image labelled 1 or 0."""
    return any(f["positives"] + f["negatives"] for f in zero_shot["findings"].values())


def evaluation_notes(result: Mapping) -> list[str]:
    """Notes on an :func:`evaluate_image_text` result that says little: one distinct report (every
    retrieval is a hit), no finding labels (zero-shot skipped), no finding with both classes."""
    notes = []
    r = result["retrieval"]
    if r["unique_reports"] == 1:
        notes.append(f"retrieval: the {r['n']} test pairs share one report, so every retrieval is a hit (R@K = "
                     f"chance = 100 %)")
    if not has_finding_labels(result["zero_shot"]):
        notes.append("no finding labels in the test split: zero-shot classification skipped")
    elif result["zero_shot"]["mean_auroc"] is None:
        notes.append("zero-shot AUROC n/a: no finding has both positive and negative test images")
    return notes


def format_evaluation_tables(results: Mapping[str, dict]) -> str:
    """Markdown tables: retrieval R@K (%) per model and chance; zero-shot AUROC per finding per model.

    ``results``: ``{model label: evaluate_image_text(...)}`` (e.g. ``pretrained``, ``untrained``).
    """
    names = list(results)
    first = results[names[0]]
    ks = list(first["retrieval"]["chance"])
    lines = [retrieval_heading(first["retrieval"]) + ", R@K in %:", "",
             "| model | direction | " + " | ".join(ks) + " |", "|---|---|" + "---:|" * len(ks)]
    for label in names:
        r = results[label]["retrieval"]
        for direction in ("image_to_report", "report_to_image"):
            lines.append(f"| {label} | {DIRECTIONS[direction]} | "
                         + " | ".join(_pct(r[direction][k]) for k in ks) + " |")
    lines.append("| chance | both | " + " | ".join(_pct(first["retrieval"]["chance"][k]) for k in ks) + " |")
    if not has_finding_labels(first["zero_shot"]):
        lines += ["", "Zero-shot classification: skipped, no finding labels in the test split."]
        return "\n".join(lines)
    findings = list(first["zero_shot"]["findings"])
    lines += ["", "Zero-shot classification from text prompts, AUROC per finding (test images labelled 1 / 0):", "",
              "| finding | positives / negatives | " + " | ".join(names) + " |",
              "|---|---:|" + "---:|" * len(names)]
    for f in findings:
        info = first["zero_shot"]["findings"][f]
        lines.append(f"| {f} | {info['positives']} / {info['negatives']} | "
                     + " | ".join(_auc(results[n]["zero_shot"]["findings"][f]["auroc"]) for n in names) + " |")
    lines.append("| **mean** | | " + " | ".join(_auc(results[n]["zero_shot"]["mean_auroc"]) for n in names) + " |")
    return "\n".join(lines)


def _figure(results: Mapping[str, dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    first = results[names[0]]
    ks = list(first["retrieval"]["chance"])
    findings = [f for f in first["zero_shot"]["findings"]
                if any(results[n]["zero_shot"]["findings"][f]["auroc"] is not None for n in names)]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [1, 1, 1.6]})
    width = 0.8 / (len(names) + 1)
    for ax, direction in zip(axes[:2], ("image_to_report", "report_to_image")):
        for i, n in enumerate(names):
            ax.bar([x + i * width for x in range(len(ks))], [100 * results[n]["retrieval"][direction][k] for k in ks],
                   width, label=n)
        ax.bar([x + len(names) * width for x in range(len(ks))], [100 * first["retrieval"]["chance"][k] for k in ks],
               width, label="chance", color="grey")
        ax.set_xticks([x + width * len(names) / 2 for x in range(len(ks))], ks)
        ax.set_ylabel("%")
        ax.set_title(f"{DIRECTIONS[direction]} (N={first['retrieval']['n']})")
        ax.legend(fontsize=8)
    ax = axes[2]
    for i, n in enumerate(names):
        values = [results[n]["zero_shot"]["findings"][f]["auroc"] or float("nan") for f in findings]
        ax.bar([x + i * width for x in range(len(findings))], values, width, label=n)
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="chance (0.5)")
    ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(findings))], findings, rotation=35,
                  ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("AUROC")
    ax.set_title("zero-shot classification")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def write_evaluation_report(run_dir: str | Path, results: Mapping[str, dict], info: Mapping | None = None) -> dict:
    """Write ``report.md``, ``metrics.json`` and ``evaluation.png`` into ``run_dir``.

    Args:
        results: ``{model label: evaluate_image_text(...)}``; the first is the main one.
        info: extra entries of ``metrics.json`` (run, counts, notes ...).

    Returns: the paths ``{"report", "metrics", "figure"}``.
    """
    run_dir = Path(run_dir)
    tables = format_evaluation_tables(results)
    text = ["# Image-text pre-training: evaluation on held-out studies", ""]
    if info:
        for key in ("model", "run_dir", "checkpoint", "split", "counts"):
            if key in info:
                text.append(f"- {key}: {info[key]}")
        text.append("")
    text += [tables, "",
             "R@K: share of queries whose report (image) is among the K nearest by cosine similarity; a report "
             "with the same text as the query's counts as a hit. Chance: the exact expected R@K of a random "
             "ranking. Zero-shot score: cos(image, positive prompts) - cos(image, negative prompts).",
             "", f"![evaluation]({FIGURE_FILE})", ""]
    figure = _figure(results, run_dir / FIGURE_FILE)
    report = atomic_write_text(run_dir / REPORT_FILE, "\n".join(text))
    # written last: its presence marks a finished run
    metrics = atomic_write_json(run_dir / METRICS_FILE, {**dict(info or {}), "evaluation": dict(results)})
    return {"report": str(report), "metrics": str(metrics), "figure": str(figure)}
