"""Findings of a chest X-ray report: from Open-i MeSH terms, or negation-aware keywords.

Used to label Open-i studies (:func:`labels_from_mesh`) and to decide what the synthetic
radiographs of ``medmodal cxr synth`` show (:func:`report_findings`).

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
Cardiomegaly; ``Granulomatous Disease`` -> several calcified nodules), the qualifiers its side (the *patient's* left / right / bilateral), zone
(upper: apex, upper lobe; middle: middle lobe, lingula, hilum; lower: base, lower lobe,
retrocardiac, costophrenic angle), severity (mild: mild, borderline, small, minimal; moderate;
severe: severe, large, massive) and multiplicity (multiple, scattered, diffuse). ``normal``
means no finding; ``No Indexing`` or an empty column means "not indexed": labels unknown and,
for drawing, the keywords of the text are used instead.

**Drawn, not labelled** (:data:`EXTRA_FINDINGS`): findings a frontal radiograph shows that are
not in the label set, so that a report's other frequent MeSH terms change its picture too:
Hyperinflation (``Emphysema``, ``Pulmonary Emphysema``, ``Pulmonary Disease, Chronic
Obstructive``, ``Lung/hyperdistention``, ``Lung, Hyperlucent``, ``Diaphragm/flattened``), Low Lung
Volumes (``Lung/hypoinflation``), Aortic Calcification (``Atherosclerosis``, ``Calcinosis/aorta``),
Tortuous Aorta (``Aorta/tortuous``, ``Aorta, Thoracic/tortuous``, ``Aorta/enlarged``), Degenerative
Spine (``Thoracic Vertebrae/degenerative``, ``Spine/degenerative``, ``Spondylosis``,
``Osteophyte``, ``Arthritis`` of the spine), Scoliosis, Vertebral Deformity (``Kyphosis``,
``Deformity/thoracic vertebrae``), Scarring (``Cicatrix``, ``Pulmonary Fibrosis``), Elevated
Hemidiaphragm (``Diaphragm/elevated``, ``Diaphragmatic Eventration``), Hiatal Hernia (``Hernia,
Hiatal``), Rib Fracture (``Fractures, Bone/ribs``, ``Deformity/ribs``), Widened Mediastinum
(``Mediastinum/widened|prominent|enlarged``), Increased Markings (``Markings``, ``Lung Diseases,
Interstitial``) and Calcification (``Calcinosis`` elsewhere: calcified hilar / mediastinal /
paratracheal lymph nodes, kind ``nodes``, or in the lung). They go into ``synth_meta.json``
("drawn"), never into ``labels.csv`` (:func:`labels_of` keeps :data:`LABEL_NAMES`).

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
from dataclasses import dataclass, replace

LABEL_NAMES = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion",
               "Pneumothorax", "Lung Opacity", "Nodule", "Support Devices")
CHEXPERT_COMPETITION = LABEL_NAMES[:5]
#: Findings the synthetic radiographs draw that are not labels (module docstring).
EXTRA_FINDINGS = ("Hyperinflation", "Low Lung Volumes", "Aortic Calcification", "Tortuous Aorta",
                  "Degenerative Spine", "Scoliosis", "Vertebral Deformity", "Scarring", "Elevated Hemidiaphragm",
                  "Hiatal Hernia", "Rib Fracture", "Widened Mediastinum", "Increased Markings", "Calcification")


@dataclass(frozen=True)
class Finding:
    """One finding to draw / label.

    Attributes:
        name: one of :data:`LABEL_NAMES` or :data:`EXTRA_FINDINGS`.
        side: ``left`` | ``right`` | ``bilateral`` | ``""`` (the patient's side; unknown = ``""``).
        zone: ``upper`` | ``middle`` | ``lower`` | ``""``.
        severity: ``mild`` | ``moderate`` | ``severe`` | ``""``.
        multiple: several lesions (nodules, opacities).
        kind: a sub-type that changes the drawing: ``calcified`` (granuloma), ``sternotomy``,
            ``catheter``, ``pacemaker``, ``clips``, ``tube``, ``interstitial``, ``borderline``, ``nodes``
            (Calcification of lymph nodes);
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
    # drawn, not labelled (EXTRA_FINDINGS)
    "emphysema": ("Hyperinflation", ""), "pulmonary emphysema": ("Hyperinflation", ""),
    "bullous emphysema": ("Hyperinflation", ""), "pulmonary disease, chronic obstructive": ("Hyperinflation", ""),
    "lung, hyperlucent": ("Hyperinflation", ""), "atherosclerosis": ("Aortic Calcification", ""),
    "spondylosis": ("Degenerative Spine", ""), "osteophyte": ("Degenerative Spine", ""),
    "scoliosis": ("Scoliosis", ""), "kyphosis": ("Vertebral Deformity", ""), "cicatrix": ("Scarring", ""),
    "pulmonary fibrosis": ("Scarring", ""), "diaphragmatic eventration": ("Elevated Hemidiaphragm", ""),
    "hernia, hiatal": ("Hiatal Hernia", ""), "markings": ("Increased Markings", ""),
    "lung diseases, interstitial": ("Increased Markings", "interstitial"),
}
#: Heads that are always several lesions.
MESH_MULTIPLE = {"granulomatous disease"}
_AORTA = frozenset({"aorta", "aorta, thoracic"})
_SPINE = frozenset({"spine", "thoracic vertebrae", "lumbar vertebrae", "cervical vertebrae"})
_NODES = frozenset({"lymph nodes", "hilum", "mediastinum", "paratracheal", "trachea, carina"})
_DEGENERATIVE = (frozenset({"degenerative"}), "Degenerative Spine", "", "")
#: Heads that are a finding only with a qualifier: head -> rules ``(qualifiers, finding, kind, severity)``;
#: the first rule with one of its qualifiers in the term wins (``None``: any term; finding ``None``: not drawn).
MESH_QUALIFIED = {
    "costophrenic angle": ((frozenset({"blunted"}), "Pleural Effusion", "", "mild"),),
    "cardiac shadow": ((frozenset({"enlarged"}), "Cardiomegaly", "", ""),),
    "heart": ((frozenset({"enlarged"}), "Cardiomegaly", "", ""),),
    "lung": ((frozenset({"hyperdistention", "hyperlucent"}), "Hyperinflation", "", ""),
             (frozenset({"hypoinflation"}), "Low Lung Volumes", "", "")),
    "aorta": ((frozenset({"tortuous", "enlarged", "ectatic", "dilatation"}), "Tortuous Aorta", "", ""),
              (frozenset({"calcified"}), "Aortic Calcification", "", "")),
    "diaphragm": ((frozenset({"elevated"}), "Elevated Hemidiaphragm", "", ""),
                  (frozenset({"flattened"}), "Hyperinflation", "", "")),
    "calcinosis": ((_AORTA, "Aortic Calcification", "", ""), (frozenset({"ribs"}), None, "", ""),
                   (_NODES, "Calcification", "nodes", ""), (None, "Calcification", "", "")),
    "arthritis": ((_SPINE, "Degenerative Spine", "", ""),),
    "deformity": ((_SPINE, "Vertebral Deformity", "", ""), (frozenset({"ribs"}), "Rib Fracture", "", "")),
    "fractures, bone": ((frozenset({"ribs"}), "Rib Fracture", "", ""),),
    "mediastinum": ((frozenset({"widened", "prominent", "enlarged"}), "Widened Mediastinum", "", ""),),
}
MESH_QUALIFIED["aorta, thoracic"] = MESH_QUALIFIED["aorta"]
for _head in _SPINE:
    MESH_QUALIFIED[_head] = (_DEGENERATIVE,)
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
            finding = _qualified(name, kind, qualifiers)
            if head in MESH_MULTIPLE:
                finding = replace(finding, multiple=True)
            found.append(finding)
            continue
        for needed, name, kind, severity in MESH_QUALIFIED.get(head, ()):
            if needed is None or needed & set(qualifiers):
                if name is not None:
                    found.append(_qualified(name, kind, [head, *qualifiers], severity))
                break
    return found


KEYWORDS = {
    "Cardiomegaly": r"cardiomegaly|enlarged (?:heart|cardiac silhouette|cardiac shadow)|(?:heart|cardiac silhouette)"
                    r"(?: size)? (?:is |appears |remains )?(?:mildly |moderately |severely |markedly )?enlarged",
    "Pleural Effusion": r"effusions?\b",
    "Pneumothorax": r"pneumothora(?:x|ces)",
    "Edema": r"\bedema|vascular congestion|\bkerley",
    "Consolidation": r"consolidat\w*|pneumonia",
    "Atelectasis": r"atelecta\w*",
    "Nodule": r"nodul\w*|granulomas?\b|granulomatous|\bmass\b",
    "Lung Opacity": r"opacit\w*|infiltrat\w*|airspace disease|densit(?:y|ies)",
    "Support Devices": r"sternotomy|catheter|pacemaker|\bpicc\b|endotracheal|\btubes?\b|surgical clips|\bstents?\b",
    # drawn, not labelled
    "Hyperinflation": r"hyperinflat\w*|hyperexpan\w*|hyperaerat\w*|emphysema\w*|\bcopd\b|chronic obstructive"
                      r"|flatten\w* (?:of )?(?:the )?(?:hemi)?diaphragm",
    "Low Lung Volumes": r"low lung volumes?|lung volumes (?:are |remain )?(?:low|decreased|reduced|diminished)"
                        r"|hypoinflat\w*",
    "Aortic Calcification": r"atheroscler\w*|(?:aortic|aorta)(?: \w+)? calcifi\w*|calcifi\w* (?:of )?(?:the )?aort\w*",
    "Tortuous Aorta": r"tortu\w*|ectatic|ectasia",
    "Degenerative Spine": r"degenerat\w*|spondylo\w*|osteophyt\w*",
    "Scoliosis": r"scolio\w*",
    "Vertebral Deformity": r"kypho\w*|compression (?:deformit|fractur)\w*|wedg\w*",
    "Scarring": r"\bscar\w*|fibros\w*|fibrotic",
    "Elevated Hemidiaphragm": r"elevat\w* (?:of )?(?:the )?(?:right |left )?hemidiaphragm|hemidiaphragm (?:is |remains )?"
                              r"(?:mildly |moderately |slightly )?elevated|eventration",
    "Hiatal Hernia": r"hiatal hernia|hiatus hernia",
    "Rib Fracture": r"\bribs? fractur\w*|fractur\w* (?:of )?(?:the )?(?:\w+ )?(?:\w+ )?ribs?\b",
    "Widened Mediastinum": r"widen\w* (?:of )?(?:the )?(?:superior )?mediastin\w*|mediastin\w* (?:is |appears )?widen\w*",
    "Increased Markings": r"(?:increased|prominent|coarse\w*|accentuated) (?:\w+ )?(?:interstitial |bronchovascular |lung "
                          r"|pulmonary )?markings|interstitial prominence",
    "Calcification": r"calcified (?:hilar |mediastinal |paratracheal )?(?:lymph )?nodes?|(?:hilar|mediastinal|nodal) "
                     r"calcifications?",
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
                if name == "Nodule" and ("calcified" in clause or "granulomatous" in clause):
                    kind = "calcified"
                if name == "Calcification":
                    kind = "nodes"
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
