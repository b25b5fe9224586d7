"""``medmodal cxr synth``: real IU X-ray reports with frontal radiographs drawn from them.

Each synthetic study takes a **real report** (findings + impression + MeSH) from Open-i's
``indiana_reports.csv`` (``reports=``, else ``$MEDMODAL_IU_REPORTS``); when neither is given,
a small set of report templates shipped here (:data:`TEMPLATE_REPORTS`, written for medmodal,
with MeSH) is used instead and a note says so. Its image is a synthetic
PA chest radiograph **rendered from the report's findings** (:func:`report_findings`: MeSH terms
with their locations, or negation-aware keywords without MeSH).

What is drawn (normalised image coordinates; the patient's right is on the image's left):

* Anatomy, varied per study: body and shoulders, two lung fields (rounded apices, domed
  hemidiaphragms, the right one higher, sharp costophrenic angles), heart (cardiothoracic
  ratio 0.40-0.48 when normal), mediastinum with aortic knob and trachea, spine, 9-10 posterior
  ribs per side, clavicles, vascular lung markings from the hila and a soft lung texture.
* Findings: Cardiomegaly (CTR 0.52 borderline / 0.56 mild / 0.62 moderate / 0.68 severe, 0.58
  unspecified); Pleural Effusion (fluid with a meniscus filling the costophrenic angle on the
  named side, height by severity, the hemidiaphragm silhouette lost); Pneumothorax (an
  apico-lateral rim without lung markings, bounded by a thin visceral pleural line, depth by
  severity); Lung Opacity and Consolidation (soft blobs in the named lung and zone; consolidation
  denser with air bronchograms; interstitial/diffuse as a reticular pattern; two kinds used only by
  the downstream twins (:mod:`medmodal.data.cxr.downstream`), never produced by the report parser:
  ``peripheral`` = faint ground-glass patches along the lateral (subpleural) lung border, the
  COVID-19 pattern, and ``lobar`` = a dense consolidation filling the named zone of one lung with
  air bronchograms, the lobar-pneumonia pattern); Nodule (round
  dense spots, small and very dense when calcified, several when multiple); Atelectasis
  (plate-like linear density at the base); Edema (bilateral perihilar haze and Kerley B lines);
  Support Devices (sternotomy wires, a central venous catheter, a pacemaker with its lead, an
  endotracheal tube, or surgical clips). A finding without side is put on a random side.
* Findings drawn but not labelled (:data:`~medmodal.data.cxr.findings.EXTRA_FINDINGS`, recorded in
  ``synth_meta.json`` "drawn" only): Hyperinflation (diaphragms lower and flattened, lungs wider
  and more lucent, fewer markings, narrower heart); Low Lung Volumes (diaphragms higher and more
  domed, crowded markings); Elevated Hemidiaphragm (the named side's dome and costophrenic angle
  raised); Widened Mediastinum (wider mediastinal shadow); Tortuous Aorta (larger, more lateral
  aortic knob and a descending aorta bulging into the left lung); Aortic Calcification (a bright
  calcified arc along the top and lateral wall of the knob); Degenerative Spine (osteophytes:
  bright spurs at both endplate corners of 3-5 thoracic vertebrae, reaching past the mediastinal
  border); Scoliosis (spine, trachea and mediastinum curved, convex to the named side);
  Vertebral Deformity (kyphosis / wedge deformity: 1-2 dense flattened vertebrae); Scarring
  (linear streaks in the named zone, upper by default); Hiatal Hernia (a retrocardiac round
  density with an air-fluid level); Rib Fracture (healed: callus lumps on 1-3 lateral ribs of
  the named side); Increased Markings (denser vascular markings); Calcification (2-4 very dense
  small spots: hilar or paratracheal lymph nodes, else in the named lung zone). Granulomatous
  disease is drawn as several calcified nodules.
* Acquisition: exposure (a random attenuation-to-brightness curve), contrast, quantum noise,
  blur, a rotation of up to 5 degrees and a small shift (applied to image, masks and boxes).

Written layout (IU R2Gen, so the real reader is the one exercised)::

    OUT/annotation.json               {"train"|"val"|"test": [{"id", "report", "image_path": ["<id>/0.png"],
                                       "split"}]}, studies split 70/10/20 (R2Gen's proportions)
    OUT/images/<id>/0.png             8-bit grey frontal radiograph, size x size
    OUT/labels.csv                    image_path, then 1/0 per finding of LABEL_NAMES (what is drawn)
    OUT/boxes.csv                     image_path, label, x0, y0, x1, y1 (pixels, xyxy, x1/y1 exclusive)
                                      one row per drawn opacity / consolidation / nodule / atelectasis
    OUT/masks/<id>/0_pleural_effusion.png, 0_pneumothorax.png   0/255 masks (empty when absent)
    OUT/synth_meta.json               per study: source report uid, MeSH, drawn findings, CTR, angle

``<id>`` is ``CXR<uid>_SYN-<k>`` (``uid``: the Open-i study the report comes from; ``k``: the
synthetic study). Every random draw of study ``k`` comes from ``numpy.random.default_rng([seed,
k])``, so the output depends only on (reports, seed, size, n), not on the number of workers.
Drawing uses numpy, scipy.ndimage and Pillow's ImageDraw only.
"""

from __future__ import annotations

import csv
import io
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import ndimage

from medmodal.data.cxr.findings import EXTRA_FINDINGS, LABEL_NAMES, Finding, labels_of, report_findings
from medmodal.data.cxr.records import CXRDataError, decode_lenient
from medmodal.data.cxr.text import is_blank_report, report_text
from medmodal.errors import ConfigError
from medmodal.io import atomic_path, atomic_write_json, atomic_write_text, ensure_writable_dir

SYNTH_FRACTIONS = (0.7, 0.1, 0.2)
MASK_NAMES = ("Pleural Effusion", "Pneumothorax")
BOX_FINDINGS = ("Lung Opacity", "Consolidation", "Nodule", "Atelectasis")

#: Fallback reports (written for medmodal in the style of chest X-ray reports) with MeSH terms.
TEMPLATE_REPORTS = (
    ("normal", "The heart is normal in size. The mediastinum is unremarkable. The lungs are clear. "
               "There is no pleural effusion or pneumothorax.", "No acute cardiopulmonary disease."),
    ("normal", "Cardiomediastinal silhouette within normal limits. No focal consolidation. No pneumothorax or "
               "pleural effusion. Bony structures intact.", "Normal chest."),
    ("Cardiomegaly/mild", "The heart is mildly enlarged. Pulmonary vascularity is normal. The lungs are clear. "
                          "No pleural effusion.", "Mild cardiomegaly without acute pulmonary disease."),
    ("Cardiomegaly/moderate;Pulmonary Congestion", "Moderate cardiomegaly. There is pulmonary vascular "
     "congestion. No focal airspace consolidation.", "Cardiomegaly with vascular congestion."),
    ("Cardiomegaly/severe;Pulmonary Edema/interstitial", "The cardiac silhouette is markedly enlarged. "
     "Interstitial edema with Kerley B lines. No pneumothorax.", "Severe cardiomegaly and pulmonary edema."),
    ("Pleural Effusion/right/small", "Small right pleural effusion with blunting of the right costophrenic "
     "angle. The heart size is normal. No pneumothorax.", "Small right pleural effusion."),
    ("Pleural Effusion/left/moderate", "Moderate left pleural effusion. The right lung is clear. Heart size is "
     "within normal limits.", "Moderate left effusion."),
    ("Pleural Effusion/bilateral/small;Cardiomegaly/mild", "Mild cardiomegaly. Small bilateral pleural "
     "effusions. No pneumothorax.", "Cardiomegaly with small bilateral effusions."),
    ("Pneumothorax/apex/right/small", "There is a small right apical pneumothorax. The lungs are otherwise "
     "clear. No pleural effusion.", "Small right pneumothorax."),
    ("Pneumothorax/left/moderate", "Moderate left pneumothorax without mediastinal shift. No effusion.",
     "Moderate left pneumothorax."),
    ("Opacity/lung/base/left", "There is an opacity in the left lung base. The heart is normal in size. "
     "No pneumothorax.", "Left basilar opacity, possibly atelectasis or early pneumonia."),
    ("Opacity/lung/upper lobe/right", "Patchy opacity in the right upper lobe. No pleural effusion. Normal heart "
     "size.", "Right upper lobe opacity."),
    ("Consolidation/lung/lower lobe/right;Pneumonia", "Focal consolidation in the right lower lobe with air "
     "bronchograms. No pneumothorax.", "Right lower lobe pneumonia."),
    ("Pulmonary Atelectasis/base/bilateral/mild", "Mild bibasilar atelectasis. The heart is normal in size. "
     "No effusion.", "Bibasilar atelectasis."),
    ("Nodule/lung/upper lobe/left", "There is a nodule in the left upper lobe. The lungs are otherwise clear. "
     "No pleural effusion.", "Left upper lobe nodule, recommend CT."),
    ("Calcified Granuloma/lung/middle lobe/right", "Calcified granuloma in the right middle lobe. Heart size "
     "normal. No pneumothorax.", "No acute disease."),
    ("Surgical Instruments;Cardiomegaly/mild", "Median sternotomy wires are intact. The heart is mildly "
     "enlarged. The lungs are clear.", "Postoperative changes, no acute process."),
    ("Catheters, Indwelling", "Right internal jugular central venous catheter tip in the SVC. No pneumothorax. "
     "Lungs are clear.", "Catheter in satisfactory position."),
    ("Implanted Medical Device", "Left chest wall pacemaker with lead in the right ventricle. The heart is normal "
     "in size. No effusion.", "Pacemaker, no acute disease."),
    ("Pulmonary Edema/mild", "Mild interstitial pulmonary edema. Heart size upper normal. No pneumothorax.",
     "Mild pulmonary edema."),
)


def default_reports_path() -> Path | None:
    """``$MEDMODAL_IU_REPORTS`` (the path of Open-i's ``indiana_reports.csv``), else ``None``
    (:func:`load_report_pool` then falls back to :data:`TEMPLATE_REPORTS` and says so).

    No other place is searched: data locations come from arguments or ``MEDMODAL_*`` variables only.

    Raises:
        FileNotFoundError: ``$MEDMODAL_IU_REPORTS`` is set but names no file (an explicit choice is
            never silently replaced by the built-in templates).
    """
    env = os.environ.get("MEDMODAL_IU_REPORTS")
    if not env:
        return None
    if not Path(env).is_file():
        raise FileNotFoundError(f"MEDMODAL_IU_REPORTS={env}: no such file (the Open-i indiana_reports.csv)")
    return Path(env)


@dataclass
class SourceReport:
    uid: str
    mesh: str
    findings: str
    impression: str

    @property
    def text(self) -> str:
        """The report as IU annotation files store it: findings then impression."""
        return f"{self.findings} {self.impression}".strip()


def load_report_pool(path: str | Path | None = None) -> tuple[list[SourceReport], str]:
    """Reports to draw from and where they came from (a path, or ``"templates"``).

    ``path=None`` uses :func:`default_reports_path`, falling back to :data:`TEMPLATE_REPORTS`.
    Reports without findings and impression, or only de-identification tokens, are left out.

    Raises:
        CXRDataError: ``path`` is given but missing or not an ``indiana_reports.csv``.
    """
    if path is None:
        path = default_reports_path()
        if path is None:
            return [SourceReport(f"T{i}", m, f, imp) for i, (m, f, imp) in enumerate(TEMPLATE_REPORTS)], "templates"
    path = Path(path)
    rows = list(csv.DictReader(io.StringIO(decode_lenient(path))))
    if not rows or not {"uid", "MeSH", "findings", "impression"} <= set(rows[0]):
        raise CXRDataError(f"{path}: expected Open-i indiana_reports.csv columns uid, MeSH, findings, impression")
    pool = [SourceReport(r["uid"].strip(), r["MeSH"] or "", (r["findings"] or "").strip(),
                         (r["impression"] or "").strip()) for r in rows]
    pool = [r for r in pool if not is_blank_report(report_text(r.findings, r.impression))]
    if not pool:
        raise CXRDataError(f"{path}: no usable report")
    return pool, str(path)


# ----------------------------------------------------------------------------------------- drawing

@dataclass
class Drawing:
    """One rendered radiograph: uint8 image, masks, boxes and the parameters drawn."""

    image: np.ndarray
    masks: dict[str, np.ndarray]
    boxes: list[tuple[str, int, int, int, int]]
    findings: list[Finding]
    params: dict = field(default_factory=dict)


_GRIDS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    if size not in _GRIDS:
        c = (np.arange(size, dtype=np.float32) + 0.5) / size
        _GRIDS[size] = (np.broadcast_to(c[None, :], (size, size)), np.broadcast_to(c[:, None], (size, size)))
    return _GRIDS[size]


def _gauss(x, y, x0, y0, sx, sy, angle=0.0):
    c, s = np.cos(angle), np.sin(angle)
    u, v = (x - x0) * c + (y - y0) * s, -(x - x0) * s + (y - y0) * c
    return np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))


def _sigmoid_edge(distance, width):
    """Soft inside indicator from a signed 'inside' quantity (>0 inside)."""
    return 1.0 / (1.0 + np.exp(-np.clip(distance / width, -30, 30)))


class _Canvas:
    """Attenuation layers on an S x S grid plus a Pillow layer for thin structures."""

    def __init__(self, size: int):
        from PIL import Image, ImageDraw

        self.size = size
        self.x, self.y = _grid(size)
        self.att = np.zeros((size, size), np.float32)
        self._line_img = Image.new("F", (size, size), 0.0)
        self.draw = ImageDraw.Draw(self._line_img)

    def px(self, value: float) -> float:
        return value * self.size

    def line(self, points, width: float, value: float) -> None:
        pts = [(float(px * self.size), float(py * self.size)) for px, py in points]
        self.draw.line(pts, fill=float(value), width=max(1, int(round(width * self.size))), joint="curve")

    def ellipse(self, x0, y0, x1, y1, value: float, outline_only=False, width=0.004) -> None:
        box = [x0 * self.size, y0 * self.size, x1 * self.size, y1 * self.size]
        if outline_only:
            self.draw.ellipse(box, outline=float(value), width=max(1, int(round(width * self.size))))
        else:
            self.draw.ellipse(box, fill=float(value))

    def lines_layer(self, blur_px: float = 0.6) -> np.ndarray:
        layer = np.asarray(self._line_img, np.float32)
        return ndimage.gaussian_filter(layer, blur_px) if blur_px > 0 else layer


def _lung_masks(cv: _Canvas, a: dict) -> tuple[np.ndarray, np.ndarray, dict]:
    """Soft right (image-left) and left (image-right) lung fields and each lung's geometry."""
    x, y = cv.x, cv.y
    masks, geo = [], {}
    for side, sign in (("right", -1.0), ("left", 1.0)):
        cx = a["cx"] + sign * a["lung_offset"]
        half_w = a["lung_half_width"] * (1.0 + (0.03 if side == "left" else 0.0))
        apex = a["apex_y"] + (0.005 if side == "left" else 0.0)
        costo = a["costo_y"] + (0.025 if side == "left" else 0.0) - a["raise_" + side]  # right one higher
        dome = costo - a["dome_height"] * (1.0 + 1.5 * a["raise_" + side] / 0.08)
        lateral_x = cx + sign * half_w * 0.96
        # ellipse for apex and lateral wall (centre low so the costophrenic angle stays acute)
        b = (a["ellipse_cy"] - apex)
        inside_ellipse = 1.0 - ((x - cx) / half_w) ** 2 - ((y - a["ellipse_cy"]) / b) ** 2
        # diaphragm: a parabola, lowest at the lateral costophrenic angle
        t = np.clip((x - (cx - sign * half_w * 0.2)) / (lateral_x - (cx - sign * half_w * 0.2)), -1.5, 1.5)
        diaphragm = dome + (costo - dome) * np.clip(t, 0, None) ** 2
        medial = sign * (x - a["cx"]) - a["mediastinum_half"]
        soft = np.minimum.reduce([inside_ellipse * 0.25 * half_w, diaphragm - y, medial])
        mask = _sigmoid_edge(soft, 0.004).astype(np.float32)
        masks.append(mask)
        geo[side] = {"cx": cx, "half_w": half_w, "apex": apex, "costo": costo, "dome": dome,
                     "lateral_x": lateral_x, "sign": sign, "diaphragm": diaphragm, "height": costo - apex}
    return masks[0], masks[1], geo


def _anatomy(rng: np.random.Generator) -> dict:
    return {
        "cx": 0.5 + rng.normal(0, 0.008),
        "body_half": rng.uniform(0.40, 0.46),
        "lung_offset": rng.uniform(0.185, 0.215),
        "lung_half_width": rng.uniform(0.15, 0.175),
        "apex_y": rng.uniform(0.09, 0.14),
        "costo_y": rng.uniform(0.74, 0.81),
        "dome_height": rng.uniform(0.07, 0.11),
        "ellipse_cy": rng.uniform(0.56, 0.64),
        "mediastinum_half": rng.uniform(0.045, 0.06),
        "heart_cy": rng.uniform(0.60, 0.65),
        "ctr": rng.uniform(0.40, 0.48),
        "rib_start": rng.uniform(0.11, 0.14),
        "rib_gap": rng.uniform(0.062, 0.07),
        "exposure": rng.uniform(1.4, 2.4),
        "gamma": rng.uniform(0.85, 1.2),
        "noise": rng.uniform(0.008, 0.025),
        "angle": rng.uniform(-5.0, 5.0),
        "shift": rng.uniform(-0.02, 0.02, size=2),
        "soft_tissue": rng.uniform(0.50, 0.60),
        "lung_air": rng.uniform(0.34, 0.42),
        "raise_right": 0.0, "raise_left": 0.0, "markings_gain": 1.0, "spine_curve": 0.0,
    }


_SEVERITY_SCALE = {"mild": 0.7, "moderate": 1.0, "severe": 1.3, "": 1.0}


def _adjust_anatomy(a: dict, findings: Sequence[Finding], rng: np.random.Generator) -> None:
    """Findings that change the anatomy itself (volumes, diaphragm, mediastinum, spine), in place."""
    for f in findings:
        s = _SEVERITY_SCALE.get(f.severity, 1.0)
        if f.name == "Hyperinflation":  # low, flat diaphragms, larger hyperlucent lungs, fewer markings
            a["costo_y"] = min(a["costo_y"] + 0.06 * s, 0.9)
            a["dome_height"] *= max(0.25, 1 - 0.55 * s)
            a["lung_half_width"] *= 1 + 0.04 * s
            a["lung_air"] += 0.07 * s
            a["markings_gain"] *= 1 - 0.35 * s
            a["ctr"] -= 0.03
        elif f.name == "Low Lung Volumes":  # high domed diaphragms, crowded markings
            a["costo_y"] -= 0.08 * s
            a["dome_height"] *= 1 + 0.3 * s
            a["lung_air"] -= 0.05 * s
            a["markings_gain"] *= 1 + 0.5 * s
        elif f.name == "Elevated Hemidiaphragm":
            for side in _sides(f, rng):
                a["raise_" + side] = 0.08 * s
        elif f.name == "Widened Mediastinum":
            a["mediastinum_half"] += 0.03 * s
        elif f.name == "Increased Markings":
            a["markings_gain"] *= 1 + 0.9 * s
        elif f.name == "Scoliosis":  # convex to the named side (the patient's right is image left)
            side = f.side if f.side in ("left", "right") else str(rng.choice(["right", "left"]))
            a["spine_curve"] = (-1.0 if side == "right" else 1.0) * 0.045 * s


CTR_BY_SEVERITY = {"borderline": 0.52, "mild": 0.56, "moderate": 0.62, "severe": 0.68, "": 0.58}


def _sides(f: Finding, rng: np.random.Generator) -> list[str]:
    if f.side == "bilateral":
        return ["right", "left"]
    return [f.side] if f.side in ("left", "right") else [str(rng.choice(["right", "left"]))]


def _zone_point(cv: _Canvas, lung: np.ndarray, g: dict, zone: str, rng: np.random.Generator, margin=0.02):
    """A random point inside ``lung`` in the zone (upper / middle / lower / any)."""
    ranges = {"upper": (0.06, 0.33), "middle": (0.35, 0.6), "lower": (0.62, 0.9), "": (0.1, 0.88)}
    lo, hi = ranges.get(zone, ranges[""])
    band = (cv.y > g["apex"] + lo * g["height"]) & (cv.y < g["apex"] + hi * g["height"])
    inner = ndimage.binary_erosion(lung > 0.5, iterations=max(1, int(margin * cv.size)))
    candidates = np.flatnonzero(inner & band)
    if candidates.size == 0:
        candidates = np.flatnonzero(lung > 0.5)
    k = int(rng.choice(candidates))
    return (k % cv.size + 0.5) / cv.size, (k // cv.size + 0.5) / cv.size


def _peripheral_point(cv: _Canvas, lung: np.ndarray, g: dict, zone: str, rng: np.random.Generator, depth=0.06):
    """A random point of ``lung`` in the zone, within ``depth`` of its lateral (chest-wall) border."""
    inside = lung > 0.5
    near_wall = inside & (ndimage.distance_transform_edt(inside) / cv.size < depth)
    lateral = g["sign"] * (cv.x - g["cx"]) > 0.0
    ranges = {"upper": (0.1, 0.4), "middle": (0.35, 0.65), "lower": (0.55, 0.92), "": (0.15, 0.9)}
    lo, hi = ranges.get(zone, ranges[""])
    band = (cv.y > g["apex"] + lo * g["height"]) & (cv.y < g["apex"] + hi * g["height"])
    candidates = np.flatnonzero(near_wall & lateral & band)
    if candidates.size == 0:
        candidates = np.flatnonzero(inside)
    k = int(rng.choice(candidates))
    return (k % cv.size + 0.5) / cv.size, (k // cv.size + 0.5) / cv.size


def _lobar_region(cv: _Canvas, lung: np.ndarray, g: dict, zone: str, rng: np.random.Generator) -> np.ndarray:
    """A consolidation filling one zone of one lung: sharp fissure-like upper / lower edge, patchy inside."""
    lo, hi = {"upper": (0.0, 0.42), "middle": (0.38, 0.66), "lower": (0.55, 1.05)}.get(zone, (0.55, 1.05))
    lo, hi = lo + rng.normal(0, 0.03), hi + rng.normal(0, 0.03)
    top, bottom = g["apex"] + lo * g["height"], g["apex"] + hi * g["height"]
    band = _sigmoid_edge(cv.y - top, 0.006) * _sigmoid_edge(bottom - cv.y, 0.006)
    patch = ndimage.gaussian_filter(rng.normal(0, 1, lung.shape).astype(np.float32), cv.size / 40)
    patch = 0.75 + 0.25 * np.tanh(patch / (patch.std() + 1e-6))
    return (band * lung * patch).astype(np.float32)


def _box(mask: np.ndarray, threshold: float = 0.5):
    ys, xs = np.nonzero(mask > threshold)
    if ys.size == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def render_radiograph(findings: Sequence[Finding], size: int = 256, rng: np.random.Generator | None = None) -> Drawing:
    """Draw one PA chest radiograph showing ``findings`` (module docstring).

    Args:
        findings: from :func:`medmodal.data.cxr.findings.report_findings`.
        size: image side in pixels.
        rng: the random generator (anatomy, placement, acquisition).

    Returns:
        :class:`Drawing` with a uint8 ``[size, size]`` image, 0/1 uint8 masks for
        :data:`MASK_NAMES`, and ``(label, x0, y0, x1, y1)`` pixel boxes of focal lesions.
    """
    rng = rng if rng is not None else np.random.default_rng()
    a = _anatomy(rng)
    cv = _Canvas(size)
    x, y = cv.x, cv.y
    names = {f.name for f in findings}
    _adjust_anatomy(a, findings, rng)
    cardiomegaly = [f for f in findings if f.name == "Cardiomegaly"]
    if cardiomegaly:
        f = cardiomegaly[0]
        a["ctr"] = CTR_BY_SEVERITY["borderline" if f.kind == "borderline" else f.severity] + rng.normal(0, 0.01)

    # body and shoulders
    body_edge = a["body_half"] - np.abs(x - a["cx"]) - 0.04 * np.clip(0.16 - y, 0, None) / 0.16
    neck = (a["cx"] + 0.09 - np.abs(x - a["cx"]))
    body = _sigmoid_edge(np.where(y < 0.06, np.minimum(body_edge, neck + (y - 0.06) * 3), body_edge), 0.01)
    att = a["soft_tissue"] * body

    right, left, geo = _lung_masks(cv, a)
    lungs = {"right": right, "left": left}
    lung = np.clip(right + left, 0, 1)

    # lung markings: vessels from each hilum + a soft texture
    for side, g in geo.items():
        hx, hy = a["cx"] + g["sign"] * (a["mediastinum_half"] + 0.045), 0.45
        for _ in range(int(rng.integers(9, 14))):
            ang = rng.uniform(-0.9 * np.pi, 0.9 * np.pi) * 0.5 + (0 if g["sign"] > 0 else np.pi)
            ang += rng.normal(0, 0.2)
            length = rng.uniform(0.12, 0.26)
            pts = [(hx, hy)]
            for step in range(1, 6):
                ang += rng.normal(0, 0.15)
                px, py = pts[-1]
                pts.append((px + np.cos(ang) * length / 5, py + np.sin(ang) * length / 5 * 1.1))
            cv.line(pts, width=0.006, value=0.05)
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (size, size)).astype(np.float32), size / 80)
    texture *= 0.025 / (texture.std() + 1e-6)
    vessel = cv.lines_layer(blur_px=size / 256)
    cv.draw.rectangle([0, 0, size, size], fill=0.0)  # reuse the line layer for bones
    markings = (vessel + texture) * a["markings_gain"]

    # heart: a tilted ellipse resting on the diaphragm, two thirds on the patient's left (image right)
    thorax_w = 2 * (a["lung_offset"] + a["lung_half_width"])
    heart_w = a["ctr"] * thorax_w
    tilt, ratio = rng.uniform(0.3, 0.45), rng.uniform(0.68, 0.78)
    p_axis = heart_w / 2 / np.sqrt(np.cos(tilt) ** 2 + ratio ** 2 * np.sin(tilt) ** 2)
    q_axis = ratio * p_axis
    half_h = np.sqrt(p_axis ** 2 * np.sin(tilt) ** 2 + q_axis ** 2 * np.cos(tilt) ** 2)
    hcx = a["cx"] + 0.18 * heart_w
    hcy = min(geo["right"]["dome"], geo["left"]["dome"]) + 0.035 - half_h
    cu, su = np.cos(tilt), np.sin(tilt)
    hu, hv = (x - hcx) * cu + (y - hcy) * su, -(x - hcx) * su + (y - hcy) * cu
    heart = _sigmoid_edge(1 - (hu / p_axis) ** 2 - (hv / q_axis) ** 2, 0.06)
    heart_w, hcy = float(heart_w), float(hcy)
    # mediastinum, aortic knob, trachea, spine
    spine_x = a["cx"] + a["spine_curve"] * np.sin(np.pi * np.clip((y - 0.15) / 0.7, 0, 1))  # scoliosis: curved
    medi = _sigmoid_edge(a["mediastinum_half"] + 0.01 - np.abs(x - spine_x), 0.006) * _sigmoid_edge(hcy - y, 0.03)
    knob_x, knob_r = a["cx"] + a["mediastinum_half"] + 0.01, 0.028
    if "Tortuous Aorta" in names:  # a wider, more lateral knob and a bulging descending aorta
        knob_x, knob_r = knob_x + 0.02, 0.04
        bulge = a["cx"] + a["mediastinum_half"] + 0.005 + 0.035 * np.sin(np.pi * np.clip((y - 0.27) / 0.4, 0, 1))
        medi = medi + 1.5 * _sigmoid_edge(bulge - x, 0.004) * _sigmoid_edge(x - a["cx"], 0.004) * (
            _sigmoid_edge(y - 0.27, 0.01) * _sigmoid_edge(0.67 - y, 0.01))
    knob = _gauss(x, y, knob_x, 0.27, knob_r, 0.03)
    trachea = _sigmoid_edge(0.011 - np.abs(x - spine_x + 0.004), 0.002) * _sigmoid_edge(0.33 - y, 0.01)
    spine = _sigmoid_edge(0.032 - np.abs(x - spine_x), 0.004) * (0.7 + 0.3 * np.cos(y * 2 * np.pi / 0.058) ** 2)
    bubble = _gauss(x, y, geo["left"]["cx"] + 0.02, geo["left"]["dome"] + 0.06, 0.045, 0.03) * rng.uniform(0, 0.15)

    # ribs and clavicles on the line layer
    for side, g in geo.items():
        for k in range(int(rng.integers(9, 11))):
            y0 = a["rib_start"] + k * a["rib_gap"]
            pts = []
            for u in np.linspace(0, 1, 14):
                px = a["cx"] + g["sign"] * (0.035 + u * (a["lung_offset"] + g["half_w"] - 0.02))
                pts.append((px, y0 - 0.03 * u + (0.15 + 0.03 * k / 10) * u ** 2))
            cv.line(pts, width=0.016, value=0.07)
        cl = [(a["cx"] + g["sign"] * 0.03, 0.175), (a["cx"] + g["sign"] * 0.16, 0.13),
              (a["cx"] + g["sign"] * 0.32, 0.115 + rng.normal(0, 0.008))]
        cv.line(cl, width=0.02, value=0.18)

    # findings -----------------------------------------------------------------------------------
    masks = {n: np.zeros((size, size), bool) for n in MASK_NAMES}
    lesions: list[tuple[str, np.ndarray]] = []
    extra = np.zeros((size, size), np.float32)
    air_extra = np.zeros((size, size), np.float32)
    keep_markings = np.ones((size, size), np.float32)
    effusion_fill = np.zeros((size, size), np.float32)
    for f in findings:
        if f.name == "Pleural Effusion":
            height = {"mild": 0.09, "moderate": 0.2, "severe": 0.38}.get(f.severity, 0.12)
            for side in _sides(f, rng):
                g = geo[side]
                h = height * g["height"] * rng.uniform(0.85, 1.15)
                rel = np.clip(np.abs(x - g["lateral_x"]) / (2 * g["half_w"]), 0, 1)
                surface = g["costo"] - h + 0.6 * h * rel ** 0.8  # meniscus: higher at the chest wall
                fluid = _sigmoid_edge(y - surface, 0.006) * lungs[side]
                effusion_fill = np.maximum(effusion_fill, fluid)
                masks["Pleural Effusion"] |= (fluid > 0.5) & (lungs[side] > 0.5)
        elif f.name == "Pneumothorax":
            depth = {"mild": 0.025, "moderate": 0.055, "severe": 0.1}.get(f.severity, 0.035)
            for side in _sides(f, rng):
                g = geo[side]
                inside = lungs[side] > 0.5
                dist = ndimage.distance_transform_edt(inside) / size
                lateral = g["sign"] * (x - g["cx"]) > -0.02
                upper = y < g["apex"] + (0.55 + depth * 3) * g["height"]
                rim = inside & (lateral | (y < g["apex"] + 0.1)) & upper
                region = ndimage.binary_opening(rim & (dist < depth), iterations=1)
                edge = rim & (dist >= depth) & (dist < depth + 1.5 / size)
                masks["Pneumothorax"] |= region
                keep_markings[region] = 0.0
                air_extra[region] += 0.08
                extra += 0.12 * ndimage.gaussian_filter(edge.astype(np.float32), 0.5)
        elif f.name in ("Lung Opacity", "Consolidation"):
            dense = f.name == "Consolidation"
            for side in _sides(f, rng):
                g = geo[side]
                count = int(rng.integers(2, 4)) if f.multiple else 1
                if f.kind == "interstitial":
                    zone_lo, zone_hi = {"upper": (0.0, 0.4), "middle": (0.3, 0.65), "lower": (0.55, 1.0)}.get(
                        f.zone, (0.15, 1.0))
                    band = _sigmoid_edge(y - (g["apex"] + zone_lo * g["height"]), 0.02) * _sigmoid_edge(
                        g["apex"] + zone_hi * g["height"] - y, 0.02)
                    net = ndimage.gaussian_filter(rng.normal(0, 1, (size, size)).astype(np.float32), size / 160)
                    net = np.clip(np.abs(net) < 0.25 * net.std(), 0, 1).astype(np.float32)
                    region = band * lungs[side]
                    extra += 0.10 * region * (0.5 + net)
                    lesions.append((f.name, region))
                    continue
                if f.kind == "lobar":
                    region = _lobar_region(cv, lungs[side], g, f.zone, rng)
                    for _ in range(4):  # air bronchograms from the hilum into the consolidated zone
                        ang = rng.uniform(0, 2 * np.pi)
                        px, py = _zone_point(cv, lungs[side], g, f.zone, rng)
                        region = region - 0.3 * _gauss(x, y, px, py, 0.06, 0.004, ang) * region
                    extra += 0.38 * region
                    lesions.append((f.name, region))
                    continue
                for _ in range(count):
                    if f.kind == "peripheral":
                        px, py = _peripheral_point(cv, lungs[side], g, f.zone, rng)
                    else:
                        px, py = _zone_point(cv, lungs[side], g, f.zone, rng)
                    r = rng.uniform(0.05, 0.085) if dense else rng.uniform(0.035, 0.065)
                    blob = np.zeros((size, size), np.float32)
                    for _ in range(int(rng.integers(3, 6))):
                        blob += _gauss(x, y, px + rng.normal(0, r / 2), py + rng.normal(0, r / 3),
                                       r * rng.uniform(0.5, 0.9), r * rng.uniform(0.4, 0.8), rng.uniform(0, np.pi))
                    blob = np.clip(blob, 0, 1) * lungs[side]
                    if dense:  # air bronchograms: dark branching lines inside the consolidation
                        for _ in range(3):
                            ang = rng.uniform(0, 2 * np.pi)
                            br = _gauss(x, y, px, py, r * 0.9, 0.004, ang)
                            blob -= 0.35 * br * blob
                    extra += (0.4 if dense else 0.2 if f.kind == "peripheral" else 0.28) * blob
                    lesions.append((f.name, blob))
        elif f.name == "Nodule":
            calcified = f.kind == "calcified"
            count = int(rng.integers(2, 6)) if f.multiple else 1
            sides = [s for s in _sides(f, rng) for _ in range(count)] if f.side else \
                [str(rng.choice(["right", "left"])) for _ in range(count)]
            for side in sides:
                px, py = _zone_point(cv, lungs[side], geo[side], f.zone, rng)
                r = rng.uniform(0.007, 0.012) if calcified else rng.uniform(0.012, 0.024)
                spot = _sigmoid_edge(r - np.sqrt((x - px) ** 2 + (y - py) ** 2), 0.0025)
                extra += (0.5 if calcified else 0.28) * spot
                lesions.append(("Nodule", spot))
        elif f.name == "Atelectasis":
            for side in _sides(f, rng):
                g = geo[side]
                px, py = _zone_point(cv, lungs[side], g, f.zone or "lower", rng)
                length = rng.uniform(0.05, 0.08) * (1.4 if f.severity == "severe" else 1.0)
                band = _gauss(x, y, px, py, length, rng.uniform(0.006, 0.011), rng.normal(0, 0.25)) * lungs[side]
                extra += 0.3 * band
                lesions.append(("Atelectasis", band))
        elif f.name == "Edema":
            amount = {"mild": 0.09, "moderate": 0.15, "severe": 0.22}.get(f.severity, 0.12)
            for side, g in geo.items():
                hx = a["cx"] + g["sign"] * (a["mediastinum_half"] + 0.06)
                extra += amount * _gauss(x, y, hx, 0.47, 0.09, 0.14) * lungs[side]
                for _ in range(int(rng.integers(4, 8))):  # Kerley B lines at the lateral bases
                    ky = g["costo"] - rng.uniform(0.03, 0.16)
                    kx = g["lateral_x"] - g["sign"] * rng.uniform(0.005, 0.02)
                    cv.line([(kx, ky), (kx - g["sign"] * rng.uniform(0.02, 0.035), ky)], 0.004, 0.14)
        elif f.name == "Support Devices":
            _draw_device(cv, f, a, geo, hcx, hcy, heart_w, rng)
        elif f.name in EXTRA_FINDINGS:
            extra += _draw_extra(cv, f, a, geo, lungs, (knob_x, knob_r), (hcx, hcy, half_h), rng)

    bones = cv.lines_layer(blur_px=size / 320)
    att = (att + 0.12 * heart + 0.18 * medi + 0.10 * knob + 0.06 * spine - 0.10 * trachea - bubble + bones
           - a["lung_air"] * lung * (1 - effusion_fill) * (1 - 0.8 * heart) - air_extra * lung
           + markings * lung * keep_markings * (1 - effusion_fill) + 0.05 * effusion_fill + extra)
    att = np.clip(att, 0, None)

    # acquisition: exposure curve, geometry, noise
    image = 1 - np.exp(-a["exposure"] * att)
    image = image / (1 - np.exp(-a["exposure"] * 1.3))
    image = np.clip(image, 0, 1) ** a["gamma"]
    image = _warp(image, a, order=1)
    image = ndimage.gaussian_filter(image, 0.5) + rng.normal(0, a["noise"], image.shape)
    image = np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)
    masks = {n: (_warp(m.astype(np.float32), a, order=1) > 0.5).astype(np.uint8) if m.any()
             else np.zeros((size, size), np.uint8) for n, m in masks.items()}
    boxes = []
    for name, lesion in lesions:
        box = _box(_warp(lesion.astype(np.float32), a, order=1), 0.5 * float(lesion.max()))
        if box is not None:
            boxes.append((name, *box))
    params = {"ctr": round(float(a["ctr"]), 4), "angle_deg": round(float(a["angle"]), 3),
              "exposure": round(float(a["exposure"]), 3), "findings": sorted(names)}
    return Drawing(image, masks, boxes, list(findings), params)


def _warp(array: np.ndarray, a: dict, order: int) -> np.ndarray:
    """Rotate by ``a["angle"]`` degrees about the centre and shift (fraction of the side)."""
    size = array.shape[0]
    theta = np.deg2rad(a["angle"])
    c, s = np.cos(theta), np.sin(theta)
    matrix = np.array([[c, -s], [s, c]])
    centre = np.array([size / 2 - 0.5, size / 2 - 0.5])
    offset = centre - matrix @ (centre + np.asarray(a["shift"]) * size)
    return ndimage.affine_transform(array, matrix, offset=offset, order=order, mode="constant", cval=0.0)


def _draw_extra(cv: _Canvas, f: Finding, a: dict, geo: dict, lungs: dict, knob: tuple, heart: tuple,
                rng: np.random.Generator) -> np.ndarray:
    """Draw one of :data:`EXTRA_FINDINGS` (thin structures on ``cv``'s line layer); return added attenuation.

    Findings that change the anatomy (volumes, diaphragms, mediastinum, markings, scoliosis,
    tortuous aorta) were applied before the anatomy was drawn; they add nothing here.
    """
    x, y = cv.x, cv.y
    out = np.zeros_like(x, dtype=np.float32)
    spine_at = lambda yy: a["cx"] + a["spine_curve"] * np.sin(np.pi * np.clip((yy - 0.15) / 0.7, 0, 1))  # noqa: E731
    if f.name == "Aortic Calcification":  # a calcified rim along the top and lateral wall of the aortic knob
        kx, kr = knob
        start = rng.uniform(250, 280)  # Pillow: degrees clockwise from 3 o'clock: top to lateral wall
        cv.draw.arc([cv.px(kx - kr), cv.px(0.27 - kr), cv.px(kx + kr), cv.px(0.27 + kr)], start,
                    start + rng.uniform(120, 170), fill=0.6, width=max(1, int(round(0.008 * cv.size))))
    elif f.name in ("Degenerative Spine", "Vertebral Deformity"):
        levels = 0.30 + 0.058 * rng.choice(8, size=int(rng.integers(3, 6) if f.name == "Degenerative Spine"
                                                          else rng.integers(1, 3)), replace=False)
        for ly in levels:
            sx = float(spine_at(ly))
            if f.name == "Degenerative Spine":  # osteophytes: bright spurs at both endplate corners
                for sign in (-1.0, 1.0):
                    reach = a["mediastinum_half"] + rng.uniform(0.0, 0.015)  # past the mediastinal border
                    cv.line([(sx + sign * 0.03, ly), (sx + sign * (0.03 + reach), ly - 0.01)], 0.007, 0.45)
            else:  # a wedge-compressed vertebra: a dense flattened band across the spine
                out += 0.4 * _sigmoid_edge(0.036 - np.abs(x - sx), 0.003) * _gauss(x, y, sx, ly, 1.0, 0.008)
    elif f.name == "Scarring":  # linear fibrotic streaks in the named zone
        for side in _sides(f, rng):
            px, py = _zone_point(cv, lungs[side], geo[side], f.zone or "upper", rng)
            for _ in range(int(rng.integers(3, 6))):
                ang = rng.uniform(-0.6, 0.6) + (np.pi / 2 if rng.random() < 0.4 else 0.0)
                length = rng.uniform(0.03, 0.06)
                cx, cy = px + rng.normal(0, 0.015), py + rng.normal(0, 0.015)
                dx, dy = np.cos(ang) * length / 2, np.sin(ang) * length / 2
                cv.line([(cx - dx, cy - dy), (cx + dx, cy + dy)], 0.006, 0.22)
    elif f.name == "Hiatal Hernia":  # retrocardiac round density with an air-fluid level
        hcx, hcy, half_h = heart
        r = 0.045 * (1.3 if f.severity == "severe" else 1.0)
        gx, gy = a["cx"] + 0.025, hcy + half_h - r - 0.01
        sac = _sigmoid_edge(r - np.sqrt((x - gx) ** 2 + ((y - gy) / 0.85) ** 2), 0.003)
        level = gy - r * rng.uniform(0.0, 0.3)
        out += 0.12 * sac * _sigmoid_edge(y - level, 0.002) - 0.3 * sac * _sigmoid_edge(level - y, 0.002)
        cv.ellipse(gx - r, gy - 0.85 * r, gx + r, gy + 0.85 * r, 0.12, outline_only=True, width=0.004)
    elif f.name == "Rib Fracture":  # healed fractures: a callus (bright lump) and a step on lateral ribs
        for side in _sides(f, rng):
            g = geo[side]
            ribs = rng.choice(np.arange(3, 8), size=int(rng.integers(2, 4)) if f.multiple else 1, replace=False)
            for k in ribs:
                u = rng.uniform(0.6, 0.85)
                px = a["cx"] + g["sign"] * (0.035 + u * (a["lung_offset"] + g["half_w"] - 0.02))
                py = a["rib_start"] + k * a["rib_gap"] - 0.03 * u + (0.15 + 0.03 * k / 10) * u ** 2
                w = rng.uniform(0.012, 0.018)
                cv.ellipse(px - w, py - w * 0.75, px + w, py + w * 0.75, 0.3)
    elif f.name == "Calcification":  # small very dense spots: hilar / paratracheal nodes or in the lung
        count = int(rng.integers(2, 5))
        for _ in range(count):
            if f.kind == "nodes":
                side = f.side if f.side in ("left", "right") else str(rng.choice(["right", "left"]))
                sign = geo[side]["sign"]
                if f.zone == "middle" or rng.random() < 0.6:  # hilar
                    px, py = a["cx"] + sign * (a["mediastinum_half"] + rng.uniform(0.03, 0.06)), rng.uniform(0.4, 0.5)
                else:  # paratracheal / mediastinal
                    px, py = a["cx"] + sign * rng.uniform(0.02, 0.04), rng.uniform(0.2, 0.32)
            else:
                side = _sides(f, rng)[0]
                px, py = _zone_point(cv, lungs[side], geo[side], f.zone, rng)
            r = rng.uniform(0.006, 0.01)
            out += 0.5 * _sigmoid_edge(r - np.sqrt((x - px) ** 2 + (y - py) ** 2), 0.002)
    return out


def _draw_device(cv: _Canvas, f: Finding, a: dict, geo: dict, hcx: float, hcy: float, heart_w: float,
                 rng: np.random.Generator) -> None:
    kind = f.kind or "catheter"
    if kind == "sternotomy":
        for k in range(int(rng.integers(4, 7))):
            wy = 0.3 + k * rng.uniform(0.05, 0.065)
            wx = a["cx"] + rng.normal(0, 0.004)
            w = rng.uniform(0.012, 0.018)
            cv.ellipse(wx - w, wy - w * 0.6, wx + w, wy + w * 0.6, 0.7, outline_only=True, width=0.005)
            cv.line([(wx - w * 0.3, wy), (wx + w * 0.3, wy)], 0.005, 0.7)
    elif kind == "pacemaker":
        px, py = a["cx"] + 0.24, rng.uniform(0.16, 0.21)
        cv.draw.rounded_rectangle([cv.px(px - 0.035), cv.px(py - 0.022), cv.px(px + 0.035), cv.px(py + 0.022)],
                                  radius=cv.px(0.01), fill=0.9)
        lead = [(px - 0.03, py), (a["cx"] + 0.02, 0.3), (a["cx"] - 0.01, 0.45), (hcx, hcy + 0.05)]
        cv.line(lead, 0.004, 0.6)
    elif kind == "tube":
        for dx in (-0.006, 0.006):
            cv.line([(a["cx"] + dx, 0.0), (a["cx"] + dx, rng.uniform(0.24, 0.3))], 0.003, 0.5)
    elif kind == "clips":
        for _ in range(int(rng.integers(3, 7))):
            side = str(rng.choice(["right", "left"]))
            g = geo[side]
            cx, cy = g["cx"] + rng.normal(0, 0.05), g["apex"] + rng.uniform(0.15, 0.6) * g["height"]
            cv.line([(cx - 0.008, cy - 0.01), (cx, cy + 0.008), (cx + 0.008, cy - 0.01)], 0.004, 0.7)
    else:  # central venous catheter from the right neck into the SVC / right atrium
        start = (a["cx"] - 0.1, 0.02)
        pts = [start, (a["cx"] - 0.07, 0.15), (a["cx"] - 0.035, 0.26), (a["cx"] - 0.02, rng.uniform(0.38, 0.46))]
        cv.line(pts, 0.005, 0.55)


# ----------------------------------------------------------------------------------------- writing

def _render_study(args) -> tuple[int, Drawing]:
    k, findings, size, seed = args
    return k, render_radiograph(findings, size, np.random.default_rng([seed, k]))


def _png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def synth_cxr(out: str | Path, num_studies: int = 100, seed: int = 0, size: int = 256,
              reports: str | Path | None = None, workers: int = 0, progress: bool = False) -> dict:
    """Write ``num_studies`` synthetic studies in the IU R2Gen layout (module docstring).

    Args:
        out: output folder (created).
        num_studies: studies (one frontal image each).
        seed: everything drawn depends on it.
        size: image side in pixels.
        reports: ``indiana_reports.csv`` (default: :func:`default_reports_path`, else the templates).
        workers: processes for rendering (0: in this process).

    Returns:
        Summary: ``studies``, ``splits`` counts, ``source`` of the reports, ``positives`` per label.

    Raises:
        ConfigError: ``num_studies`` < 1 or ``size`` < 64. CXRDataError: a bad reports file.
    """
    from medmodal.data.splits import make_splits

    if num_studies < 1:
        raise ConfigError(f"number of studies must be >= 1, got {num_studies}")
    if size < 64:
        raise ConfigError(f"image size must be >= 64 pixels, got {size}")
    out = ensure_writable_dir(out)
    pool, source = load_report_pool(reports)
    order = np.random.default_rng([seed, 10**6]).permutation(len(pool))
    chosen = [pool[order[k % len(pool)]] for k in range(num_studies)]
    ids = [f"CXR{r.uid}_SYN-{k:05d}" for k, r in enumerate(chosen)]
    findings = [report_findings(r.mesh, r.text) for r in chosen]
    jobs = [(k, findings[k], size, seed) for k in range(num_studies)]
    if workers and workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool_exec:
            results = pool_exec.map(_render_study, jobs, chunksize=max(1, num_studies // (workers * 8)))
            drawings = _write_images(out, ids, results, progress, num_studies)
    else:
        drawings = _write_images(out, ids, map(_render_study, jobs), progress, num_studies)

    split_ids = make_splits(ids, SYNTH_FRACTIONS, seed)
    split_of = {i: name for name, members in split_ids.items() for i in members}
    annotation = {name: [] for name in ("train", "val", "test")}
    labels_rows, box_rows, meta = [], [], {}
    for k, (study_id, report) in enumerate(zip(ids, chosen)):
        rel = f"{study_id}/0.png"
        annotation[split_of[study_id]].append({"id": study_id, "report": report.text, "image_path": [rel],
                                               "split": split_of[study_id]})
        drawing = drawings[k]
        labels_rows.append([rel] + [str(v) for v in labels_of(drawing.findings).values()])
        box_rows += [[rel, name, x0, y0, x1, y1] for name, x0, y0, x1, y1 in drawing.boxes]
        meta[study_id] = {"source_uid": report.uid, "mesh": report.mesh, **drawing.params,
                          "drawn": [f.__dict__ for f in drawing.findings]}
    atomic_write_text(out / "labels.csv", _csv([["image_path", *LABEL_NAMES], *labels_rows]))
    atomic_write_text(out / "boxes.csv", _csv([["image_path", "label", "x0", "y0", "x1", "y1"], *box_rows]))
    atomic_write_json(out / "synth_meta.json", {"seed": seed, "size": size, "reports": source, "studies": meta})
    atomic_write_json(out / "annotation.json", annotation)  # last: its presence means the dataset is complete
    positives = {n: int(sum(int(r[1 + i]) for r in labels_rows)) for i, n in enumerate(LABEL_NAMES)}
    return {"studies": num_studies, "splits": {k: len(v) for k, v in annotation.items()}, "source": source,
            "positives": positives, "boxes": len(box_rows)}


def _write_images(out: Path, ids: list[str], results, progress: bool, total: int) -> list[Drawing]:
    if progress:
        from rich.progress import track

        results = track(results, total=total, description="drawing radiographs", transient=True)
    drawings = [None] * len(ids)
    for k, drawing in results:
        folder = out / "images" / ids[k]
        _png(folder / "0.png", drawing.image)
        for name in MASK_NAMES:
            _png(out / "masks" / ids[k] / f"0_{name.lower().replace(' ', '_')}.png", drawing.masks[name] * 255)
        drawing.image, drawing.masks = None, {}  # keep only labels / boxes in memory
        drawings[k] = drawing
    return drawings


def _csv(rows) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()
