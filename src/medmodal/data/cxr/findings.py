"""Findings of a chest X-ray report: from Open-i MeSH terms, or negation-aware keywords.

Used to label Open-i studies (:func:`labels_from_mesh`) and to decide what the synthetic
radiographs of ``medmodal data synth-cxr`` show (:func:`report_findings`).

**Label set** (:data:`LABEL_NAMES`): CheXpert's five competition findings (Atelectasis,
Cardiomegaly, Consolidation, Edema, Pleural Effusion) and Pneumothorax, Lung Opacity, Nodule,
Support Devices.

**MeSH** (Open-i ``MeSH`` column, ``;``-separated terms ``Head/qualifier/...`` such as
``Opacity/lung/base/left``, ``Pleural Effusion/right/small``, ``Cardiomegaly/mild``): the head
gives the finding (:data:`MESH_HEADS`; e.g. ``Pulmonary Atelectasis`` -> Atelectasis,
``Pneumonia`` -> Consolidation, ``Pulmonary Congestion`` -> Edema, ``Calcified Granuloma`` ->
Nodule, ``Infiltrate`` / ``Airspace Disease`` / ``Density`` -> Lung Opacity, ``Catheters,
Indwelling`` / ``Implanted Medical Device`` / ``Surgical Instruments`` -> Support Devices;
``Costophrenic Angle/blunted`` -> a small Pleural Effusion; ``Cardiac Shadow/enlarged`` ->
Cardiomegaly), the qualifiers its side (the *patient's* left / right / bilateral), zone
(upper: apex, upper lobe; middle: middle lobe, lingula, hilum; lower: base, lower lobe,
retrocardiac, costophrenic angle), severity (mild: mild, borderline, small, minimal; moderate;
severe: severe, large, massive) and multiplicity (multiple, scattered, diffuse). ``normal``
means no finding; ``No Indexing`` or an empty column means "not indexed": labels unknown and,
for drawing, the keywords of the text are used instead.

**Keywords** (no MeSH): every sentence is cut into clauses at ``;``, ``but``, ``however``,
``although``; a keyword (:data:`KEYWORDS`) counts when no negation cue (``no``, ``not``,
``without``, ``negative for``, ``free of``, ``clear of``, ``absence of``, ``resolved``,
``removed``) precedes it in its clause, so "no pneumothorax" and "no focal infiltrate, pleural
effusion, or pneumothorax" give none; "no change in the cardiomegaly" / "no interval increase"
are not negations. Side, zone and severity words of the clause qualify the finding. This is a
NegEx-style simplification, good enough to draw pictures, not a labeller for evaluation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LABEL_NAMES = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion",
               "Pneumothorax", "Lung Opacity", "Nodule", "Support Devices")
CHEXPERT_COMPETITION = LABEL_NAMES[:5]


@dataclass(frozen=True)
class Finding:
    """One finding to draw / label.

    Attributes:
        name: one of :data:`LABEL_NAMES`.
        side: ``left`` | ``right`` | ``bilateral`` | ``""`` (the patient's side; unknown = ``""``).
        zone: ``upper`` | ``middle`` | ``lower`` | ``""``.
        severity: ``mild`` | ``moderate`` | ``severe`` | ``""``.
        multiple: several lesions (nodules, opacities).
        kind: a sub-type that changes the drawing: ``calcified`` (granuloma), ``sternotomy``,
            ``catheter``, ``pacemaker``, ``clips``, ``tube``, ``interstitial``, ``borderline``;
            ``peripheral`` (Lung Opacity) and ``lobar`` (Consolidation) are set only by the
            downstream twins (COVID-19 / lobar pneumonia patterns), never by the parsers here.
    """

    name: str
    side: str = ""
    zone: str = ""
    severity: str = ""
    multiple: bool = False
    kind: str = ""


MESH_HEADS = {
    "cardiomegaly": ("Cardiomegaly", ""),
    "pulmonary atelectasis": ("Atelectasis", ""), "atelectasis": ("Atelectasis", ""),
    "consolidation": ("Consolidation", ""), "pneumonia": ("Consolidation", ""),
    "pulmonary edema": ("Edema", ""), "pulmonary congestion": ("Edema", ""), "edema": ("Edema", ""),
    "pleural effusion": ("Pleural Effusion", ""),
    "pneumothorax": ("Pneumothorax", ""),
    "nodule": ("Nodule", ""), "mass": ("Nodule", ""), "granuloma": ("Nodule", "calcified"),
    "calcified granuloma": ("Nodule", "calcified"), "granulomatous disease": ("Nodule", "calcified"),
    "opacity": ("Lung Opacity", ""), "density": ("Lung Opacity", ""), "infiltrate": ("Lung Opacity", ""),
    "airspace disease": ("Lung Opacity", ""),
    "catheters, indwelling": ("Support Devices", "catheter"), "tube, inserted": ("Support Devices", "tube"),
    "medical device": ("Support Devices", "catheter"), "implanted medical device": ("Support Devices", "pacemaker"),
    "stents": ("Support Devices", "clips"), "surgical instruments": ("Support Devices", "clips"),
    "sutures": ("Support Devices", "clips"),
}
#: Heads that are a finding only with a qualifier: head -> (qualifier, finding, kind, severity).
MESH_QUALIFIED = {
    "costophrenic angle": ("blunted", "Pleural Effusion", "", "mild"),
    "cardiac shadow": ("enlarged", "Cardiomegaly", "", ""),
    "heart": ("enlarged", "Cardiomegaly", "", ""),
}
_SIDES = {"left": "left", "right": "right", "bilateral": "bilateral"}
_ZONES = {"apex": "upper", "upper lobe": "upper", "middle lobe": "middle", "lingula": "middle", "hilum": "middle",
          "base": "lower", "lower lobe": "lower", "retrocardiac": "lower", "costophrenic angle": "lower"}
_SEVERITY = {"mild": "mild", "borderline": "mild", "small": "mild", "minimal": "mild", "moderate": "moderate",
             "severe": "severe", "large": "severe", "massive": "severe"}
_MULTIPLE = {"multiple", "scattered", "diffuse"}
NOT_INDEXED = {"", "no indexing"}


def _qualified(name: str, kind: str, qualifiers: list[str], severity: str = "") -> Finding:
    side = next((_SIDES[q] for q in qualifiers if q in _SIDES), "")
    zone = next((_ZONES[q] for q in qualifiers if q in _ZONES), "")
    if "lingula" in qualifiers or "retrocardiac" in qualifiers:
        side = side or "left"
    if "middle lobe" in qualifiers:
        side = side or "right"
    severity = severity or next((_SEVERITY[q] for q in qualifiers if q in _SEVERITY), "")
    if name == "Cardiomegaly" and "borderline" in qualifiers:
        kind = "borderline"
    if "interstitial" in qualifiers:
        kind = kind or "interstitial"
    return Finding(name, side, zone, severity, any(q in _MULTIPLE for q in qualifiers), kind)


def mesh_findings(mesh: str | None) -> list[Finding] | None:
    """Findings of an Open-i MeSH string; ``None`` when it is not indexed (module docstring)."""
    terms = [t.strip() for t in (mesh or "").split(";") if t.strip()]
    if not terms or all(t.lower() in NOT_INDEXED for t in terms):
        return None
    found = []
    for term in terms:
        head, *qualifiers = [p.strip().lower() for p in term.split("/")]
        if head in MESH_HEADS:
            name, kind = MESH_HEADS[head]
            found.append(_qualified(name, kind, qualifiers))
        elif head in MESH_QUALIFIED and MESH_QUALIFIED[head][0] in qualifiers:
            _, name, kind, severity = MESH_QUALIFIED[head]
            found.append(_qualified(name, kind, [head, *qualifiers], severity))
    return found


KEYWORDS = {
    "Cardiomegaly": r"cardiomegaly|enlarged (?:heart|cardiac silhouette|cardiac shadow)|(?:heart|cardiac silhouette)"
                    r"(?: size)? (?:is |appears |remains )?(?:mildly |moderately |severely |markedly )?enlarged",
    "Pleural Effusion": r"effusions?\b",
    "Pneumothorax": r"pneumothora(?:x|ces)",
    "Edema": r"\bedema|vascular congestion|\bkerley",
    "Consolidation": r"consolidat\w*|pneumonia",
    "Atelectasis": r"atelecta\w*",
    "Nodule": r"nodul\w*|granulomas?\b|\bmass\b",
    "Lung Opacity": r"opacit\w*|infiltrat\w*|airspace disease|densit(?:y|ies)",
    "Support Devices": r"sternotomy|catheter|pacemaker|\bpicc\b|endotracheal|\btubes?\b|surgical clips|\bstents?\b",
}
_NEGATION = re.compile(r"\b(?:no|not|without|negative for|free of|clear of|absence of|resolved|removed)\b")
_PSEUDO = re.compile(r"\bno (?:significant |interval |appreciable )?(?:change|increase|decrease|worsening)\b")
_CLAUSE = re.compile(r";|\bbut\b|\bhowever\b|\balthough\b")
_DEVICE_KIND = (("sternotomy", "sternotomy"), ("pacemaker", "pacemaker"), ("tube", "tube"), ("clip", "clips"),
                ("stent", "clips"))


def keyword_findings(text: str) -> list[Finding]:
    """Findings asserted (not negated) in free text, by the keyword rules of the module docstring."""
    found = []
    for sentence in re.split(r"\.(?!\d)", (text or "").lower()):
        for clause in _CLAUSE.split(sentence):
            clause = _PSEUDO.sub(" ", clause)
            words = clause.split()
            for name, pattern in KEYWORDS.items():
                match = re.search(pattern, clause)
                if match is None or _NEGATION.search(clause[: match.start()]):
                    continue
                qualifiers = [w for w in words if w in _SIDES or w in _SEVERITY or w in _MULTIPLE]
                qualifiers += ["base" for w in words if w in ("base", "bases", "basilar", "bibasilar", "lower")]
                qualifiers += ["apex" for w in words if w in ("apex", "apical", "upper")]
                qualifiers += ["hilum" for w in words if w in ("mid", "middle", "perihilar", "hilar")]
                qualifiers += ["lingula" for w in words if w.startswith("lingul")]
                if "bibasilar" in words or "bilateral" in words or "both" in words:
                    qualifiers.append("bilateral")
                kind = ""
                if name == "Support Devices":
                    kind = next((k for key, k in _DEVICE_KIND if key in clause), "catheter")
                if name == "Nodule" and "calcified" in clause:
                    kind = "calcified"
                found.append(_qualified(name, kind, qualifiers))
    return found


def report_findings(mesh: str | None, text: str) -> list[Finding]:
    """Findings to draw: from MeSH when indexed, else from the text's keywords.

    With MeSH, a non-negated "sternotomy" in the text makes a Support Devices finding a
    sternotomy (Open-i indexes sternotomy wires as ``Surgical Instruments`` or ``Sutures``).
    """
    found = mesh_findings(mesh)
    if found is None:
        return keyword_findings(text)
    sternotomy = any(f.kind == "sternotomy" for f in keyword_findings(text))
    if sternotomy:
        found = [f for f in found if f.name != "Support Devices" or f.kind not in ("clips", "")]
        found.append(Finding("Support Devices", kind="sternotomy"))
    return found


def labels_of(findings: list[Finding] | None, names=LABEL_NAMES) -> dict:
    """{label: 1 / 0} for drawn or indexed findings; every value ``None`` when ``findings`` is ``None``."""
    if findings is None:
        return {n: None for n in names}
    present = {f.name for f in findings}
    return {n: int(n in present) for n in names}


def labels_from_mesh(mesh: str | None) -> dict:
    """Open-i labels: 1 when a MeSH term maps to the finding, 0 otherwise, ``None`` when not indexed."""
    return labels_of(mesh_findings(mesh))
